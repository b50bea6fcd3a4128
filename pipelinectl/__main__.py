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

    bad = _not_text(args)
    if bad is not None:
        sys.stderr.write(f"error: {bad}\n")
        return 2

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


def _not_text(args: list[str]) -> str | None:
    """Why an argument cannot be used, if one is not valid UTF-8.

    Python hands over bytes that are not UTF-8 as surrogate escapes; no name, ID or URL can hold them,
    and every layer after this one (HTTP, JSON, the audit log) would fail on them in its own way.
    """
    for position, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            import os

            shown = repr(os.fsencode(arg))[2:-1]
            if len(shown) > 60:
                shown = shown[:57] + "..."
            return f"argument {position} ('{shown}') is not valid UTF-8 text; names and IDs must be UTF-8"
    return None


if __name__ == "__main__":
    sys.exit(main())
