"""Global options, accepted anywhere on the command line (kubectl's persistent flags).

They are lifted out of argv before the command tree sees it, so every command,
plugin command groups included, gets them without declaring them, and so the
fast paths in ``__main__`` can read them without importing typer. Keep this
module free of third-party imports: it runs on every invocation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

OUTPUT_FORMATS = ("table", "wide", "json", "yaml", "jsonl", "name")


class OptionError(ValueError):
    """A global option is malformed; main() reports it as a usage error."""


@dataclass
class GlobalOptions:
    context: str | None = None
    config: str | None = None
    output: str = "table"
    timeout: float = 30.0
    no_color: bool = False
    verbose: int = 0
    contexts: list[str] = field(default_factory=list)  # every --context given, in order (`ui` shows several)
    confirm_context: str | None = None  # the context's name, typed ahead: confirms a mutation without a prompt

    @property
    def machine(self) -> bool:
        """Machine-readable output: never prompt, never decorate."""
        return self.output in ("json", "yaml", "jsonl", "name")


# flag -> (attribute, takes a value)
_FLAGS: dict[str, tuple[str, bool]] = {
    "--context": ("context", True),
    "--config": ("config", True),
    "-o": ("output", True),
    "--output": ("output", True),
    "--timeout": ("timeout", True),
    "--confirm-context": ("confirm_context", True),
    "--no-color": ("no_color", False),
    "-v": ("verbose", False),
    "--verbose": ("verbose", False),
}

GLOBAL_OPTIONS_HELP: tuple[tuple[str, str], ...] = (
    ("--context NAME", "use this context instead of the current one (env: PIPELINECTL_CONTEXT)"),
    ("--config FILE", "config file (env: PIPELINECTL_CONFIG; default: $XDG_CONFIG_HOME/pipelinectl/config.yaml)"),
    ("-o, --output FORMAT", "table | wide | json | yaml | jsonl | name (default: table)"),
    ("--timeout SECONDS", "overall deadline for each request, retries included (default: 30)"),
    ("--confirm-context NAME", "confirm a mutation by naming its context (protected contexts need it off a terminal)"),
    ("--no-color", "no colour (also: NO_COLOR set, or output not a terminal)"),
    ("-v, --verbose", "trace requests and responses on stderr, secrets redacted; tracebacks on error"),
)


def _show(value: str | None) -> str:
    """A user's value in an error message: quoted, and on one line whatever it holds."""
    return repr(value) if value is None or not value.isprintable() else f"'{value}'"


def _assign(options: GlobalOptions, attr: str, value: str | None, flag: str) -> None:
    if attr == "output":
        if value not in OUTPUT_FORMATS:
            raise OptionError(f"invalid value for {flag}: {_show(value)} (choose from {', '.join(OUTPUT_FORMATS)})")
        options.output = value
    elif attr == "timeout":
        try:
            seconds = float(value or "")
        except ValueError:
            raise OptionError(f"invalid value for {flag}: {_show(value)} is not a number of seconds") from None
        if not 0 < seconds <= 86400:
            raise OptionError(f"invalid value for {flag}: {_show(value)} is out of range "
                              "(more than 0 and at most 86400 seconds)")
        options.timeout = seconds
    elif attr == "verbose":
        options.verbose += 1
    elif attr == "no_color":
        options.no_color = True
    else:
        if not value:
            raise OptionError(f"{flag} needs a value")
        setattr(options, attr, value)
        if attr == "context":
            options.contexts.append(value)


def split_global_options(argv: list[str]) -> tuple[GlobalOptions, list[str]]:
    """Return the global options and argv without them. Stops at a bare `--`."""
    options = GlobalOptions()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if len(arg) > 2 and arg.startswith("-v") and set(arg[1:]) == {"v"}:  # -vv, -vvv
            options.verbose += len(arg) - 1
            i += 1
            continue
        name, eq, inline = arg.partition("=")
        if arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            name, eq, inline = "-o", "=", arg[2:].lstrip("=")
        spec = _FLAGS.get(name)
        if spec is None:
            rest.append(arg)
            i += 1
            continue
        attr, takes_value = spec
        if takes_value:
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise OptionError(f"{name} needs a value")
            _assign(options, attr, value, name)
        else:
            if eq:
                raise OptionError(f"{name} takes no value")
            _assign(options, attr, None, name)
        i += 1
    if options.context is None:
        options.context = os.environ.get("PIPELINECTL_CONTEXT") or None
    if options.config is None:
        options.config = os.environ.get("PIPELINECTL_CONFIG") or None
    if os.environ.get("NO_COLOR"):
        options.no_color = True
    return options, rest
