"""The layout of a command's `--help`: plain text, values named, the docstring's "Examples:" last.

Command authors end each docstring with an "Examples:" section. Help shows it
last, after the options (kubectl and gh do the same), and
scripts/generate_docs.py puts the same lines into the man pages, so the two
cannot disagree. Help is click's plain layout (the style of the top-level help,
readable in a pager or a runbook); values are named as the man pages name them.
"""

from __future__ import annotations

import functools
import inspect
import textwrap
from typing import Any

HEADING = "Examples:"


def split_examples(help_text: str | None) -> tuple[str, list[str]]:
    """(the help without its "Examples:" section, the example lines, stripped)."""
    text = inspect.cleandoc(help_text or "")
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip() == HEADING:
            body = "\n".join(lines[:index]).rstrip()
            examples = [example.strip() for example in lines[index + 1:] if example.strip()]
            return body, examples
    return text.strip(), []


def epilog(examples: list[str]) -> str:
    """The examples as an epilog: a heading, then one indented line each."""
    return "\n".join([HEADING, *(f"  {example}" for example in examples)])


def prepare_help(command: Any) -> None:
    """Lay out `--help` of a command and its subcommands: values named, examples last.

    `command` is the click command typer.main.get_command built. Examples move
    from the help to the epilog, which is written as it is, heading flush left
    like "Options:" (click would re-wrap it into one paragraph and indent it).
    """
    body, examples = split_examples(getattr(command, "help", None))
    if examples and not command.epilog:
        command.help = body
        command.epilog = epilog(examples)
    if command.epilog:
        command.format_epilog = functools.partial(_write_epilog, command.epilog)
    for param in getattr(command, "params", ()):
        if param.param_type_name == "argument":  # NAME, [NAME], NAME... as the man pages show them
            param.make_metavar = functools.partial(_argument_usage, param, metavar(param))
        elif param.metavar is None and not (getattr(param, "is_flag", False) or getattr(param, "count", False)):
            param.metavar = metavar(param)
    for sub in (getattr(command, "commands", None) or {}).values():
        prepare_help(sub)


def metavar(param: Any) -> str:
    """The name a value is shown by: the declared metavar, the choices, else the parameter's name."""
    if param.metavar:
        return param.metavar.strip("[]{}")
    from pipelinectl.cli.completion import fixed_choices

    fixed = fixed_choices(param)
    if fixed:
        return "{" + "|".join(fixed) + "}"
    return (param.name or "value").upper().rstrip("_")


def _argument_usage(param: Any, name: str, ctx: Any = None, *, usage: bool = False) -> str:
    shown = name + ("..." if param.nargs != 1 else "")
    return f"[{shown}]" if usage and not param.required else shown


def _write_epilog(text: str, ctx: Any, formatter: Any) -> None:
    formatter.write_paragraph()
    formatter.write(textwrap.dedent(text).strip("\n") + "\n")
