"""Secret redaction: one place that knows what a secret looks like in text.

Tokens are registered when a credential is resolved, so any text on its way
to stdout, stderr, a trace or the audit log can have them removed, even when
the secret is not in an obvious `Authorization:` header. A registered secret
is also found in the forms other code shows it in: a bytes literal or a
repr (httpx quotes a header value it refuses), JSON string escapes, and
percent-encoding (a URL or a form body).

Secret-looking fields (`Authorization: ...`, `token=...`) are redacted by
pattern; a placeholder in a hint (`Bearer <token>`, `Bearer TOKEN`,
`$TOKEN`, an already redacted `[REDACTED]`) is left as it is.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"
_known: set[str] = set()

# What a hint writes where a secret goes: <token>, TOKEN, YOUR_TOKEN, $TOKEN, ${TOKEN}, ..., ***, [REDACTED].
_PLACEHOLDER = re.compile(r"\[REDACTED\]|<[^<>\s]*>|\$\{?[A-Za-z_]\w*\}?|[A-Z][A-Z_]*|\.\.\.|\*+")
_VALUE = r"(?P<value>[^\s,;'\"}]+)"
_PATTERNS = (
    # A quoted literal holding credentials (b'Bearer ...', "Bearer ..."): redacted up to its closing quote,
    # escapes and all, since a value that needed escaping may hold anything (a notice line, then the token).
    re.compile(r"""(?i)(?P<lead>(?<![\w'"])b?(?P<q>['"])(?:authorization:\s*)?(?:bearer|basic)\s+)"""
               r"""(?P<value>(?:\\.|(?!(?P=q))[^\\])+)(?=(?P=q))"""),
    re.compile(r"(?i)(?P<lead>authorization\s*[:=]\s*(?:bearer\s+|basic\s+)?)" + _VALUE),
    re.compile(r"(?i)(?P<lead>(?<![\w-])(?:token|api[-_]?key|password|secret)[\"']?\s*[:=]\s*[\"']?)" + _VALUE),
)


def _shown_forms(secret: str) -> set[str]:
    """The secret as code may print it: raw, repr/bytes/ASCII escapes, JSON escapes, percent-encoded."""
    import json
    from urllib.parse import quote, quote_plus

    forms = {secret, repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1],
             quote(secret, safe=""), quote(secret), quote_plus(secret)}
    raw = secret.encode("utf-8", "surrogateescape")
    forms.add(repr(raw)[2:-1])
    return {form for form in forms if len(form) >= 4}


def register_secret(secret: str | None) -> None:
    """Remember a secret so redact() removes it wherever it appears, escaped or not."""
    if secret and len(secret) >= 4:
        _known.update(_shown_forms(secret))


def _replace(match: re.Match[str]) -> str:
    if _PLACEHOLDER.fullmatch(match.group("value")):
        return match.group(0)
    return match.group("lead") + REDACTED


def redact(text: str) -> str:
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_replace, text)
    return text


def display_url(url: str, default_scheme: str | None = None) -> str:
    """The URL, or a comma-separated server list, without any user:password@ part: safe to print.

    `default_scheme` is put before a bare `host:port` (NATS accepts those in a server list).
    """
    from urllib.parse import urlsplit, urlunsplit

    shown = []
    for part in url.split(","):
        part = part.strip()
        if default_scheme and "://" not in part:
            part = f"{default_scheme}://{part}"
        split = urlsplit(part)
        host = split.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if split.port:
            host = f"{host}:{split.port}"
        shown.append(urlunsplit((split.scheme, host, split.path, "", "")))
    return ",".join(shown)
