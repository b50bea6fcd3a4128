"""One wording for every unknown name the operator typed: commands, subcommands, options.

    unknown command 'staus'; did you mean 'status'? (see 'pipelinectl --help')
    unknown command 'lsit'; did you mean 'list'? (see 'pipelinectl dlq --help')
    unknown option '--wtch'; did you mean '--watch'? (see 'pipelinectl status --help')
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` with the closest choice, or nothing when none is close."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown(what: str, word: str, choices: Iterable[str], where: str) -> str:
    """The one-line error for an unknown `what` (command, option) typed in `where` (a command path)."""
    return f"unknown {what} '{word}'{did_you_mean(word, choices)} (see '{where} --help')"
