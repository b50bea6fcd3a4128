"""Entry point. Fast paths (`--version`, help, shell completion) run before any heavy import.

`pipelinectl __complete ...` is what the completion scripts run at every Tab:
it is answered by pipelinectl.complete from a generated table, without typer.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["__complete"]:
        from .complete import main as complete

        return complete(args[1:])
    if args in (["--version"], ["-V"]):
        from . import __version__

        sys.stdout.write(f"pipelinectl {__version__}\n")
        return 0

    from .cli.options import OptionError, split_global_options

    try:
        options, rest = split_global_options(args)
    except OptionError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if not rest or rest in (["--help"], ["-h"], ["help"]):
        from .cli.help import top_level_help

        sys.stdout.write(top_level_help())
        return 0
    if rest[-1] in ("--help", "-h"):  # a built-in command's help, as generated from the tree
        from .cli.help import command_help

        text = command_help(rest[:-1])
        if text is not None:
            sys.stdout.write(text)
            return 0

    from .cli.app import run

    return run(options, rest)


if __name__ == "__main__":
    sys.exit(main())
