"""Secret redaction: one place that knows what a secret looks like in text.

Tokens are registered when a credential is resolved, so any text on its way
to stdout, stderr, a trace or the audit log can have them removed, even when
the secret is not in an obvious `Authorization:` header.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"
_known: set[str] = set()
_PATTERNS = (
    re.compile(r"(?i)(authorization\s*[:=]\s*)(bearer\s+|basic\s+)?[^\s,;'\"}]+"),
    re.compile(r"(?i)((?<![\w-])(?:token|api[-_]?key|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s,;'\"}]+"),
)


def register_secret(secret: str | None) -> None:
    """Remember a secret so redact() removes it wherever it appears."""
    if secret and len(secret) >= 4:
        _known.add(secret)


def redact(text: str) -> str:
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: "".join(g or "" for g in m.groups()) + REDACTED, text)
    return text
