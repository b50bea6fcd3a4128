"""The "Examples:" section of a command's docstring: where `--help` and the man pages get examples.

Command authors end each docstring with an "Examples:" section. Help shows it
last, after the options (kubectl and gh do the same), and
scripts/generate_docs.py puts the same lines into the man pages, so the two
cannot disagree.
"""

from __future__ import annotations

import inspect
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
    """The examples as an epilog: a heading, then one indented line each.

    It starts with a newline because typer dedents the epilog (inspect.cleandoc) from the
    second line on; an unindented heading there keeps the examples' indentation.
    """
    return "\n".join(["", HEADING, *(f"  {example}" for example in examples)])


def move_examples_to_epilog(command: Any) -> None:
    """Move every command's examples from its help to its epilog, so `--help` ends with them.

    `command` is the click command typer.main.get_command built; subcommands are
    visited too. Rich markup in examples is escaped (a `[REDACTED]` stays text).
    """
    body, examples = split_examples(getattr(command, "help", None))
    if examples and not command.epilog:
        from rich.markup import escape

        command.help = body
        command.epilog = escape(epilog(examples))
    for sub in (getattr(command, "commands", None) or {}).values():
        move_examples_to_epilog(sub)
