"""Bearer-token auth: a token file maps tokens to roles (viewer < operator < admin).

Tokens are compared in constant time and never logged; a principal is known
by the token's `name` (or, for an entry without one, `token-` and a short hash
of the token), which is what logs, the idempotency store and the audit trail
record. Two tokens may share a name (one person's old and new token while it is
rotated); `system` (the plane's own actor in the audit trail) and `anonymous`
(auth off) are reserved.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from pipelinectl.errors import PermissionDeniedError, UnauthenticatedError

ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


ANONYMOUS = Principal("anonymous", "admin")  # only when auth is off (loopback demo)
RESERVED = frozenset({"system", "anonymous"})


class TokenFileError(ValueError):
    pass


def load_tokens(path: str | Path) -> dict[str, Principal]:
    """Read `{tokens: [{token, role, name}]}` (YAML or JSON)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        import yaml

        data = yaml.safe_load(text)
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TokenFileError("token file needs a non-empty 'tokens' list")
    tokens: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str) or not entry["token"]:
            raise TokenFileError(f"token file entry {i}: needs a non-empty 'token'")
        role = entry.get("role")
        if role not in ROLES:
            raise TokenFileError(f"token file entry {i}: role must be one of {', '.join(ROLES)}")
        name = str(entry.get("name") or "token-" + hashlib.sha256(entry["token"].encode()).hexdigest()[:8])
        if name in RESERVED:
            raise TokenFileError(f"token file entry {i}: name {name!r} is reserved (the plane's own actor)")
        tokens[entry["token"]] = Principal(name, role)
    return tokens


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Resolves an Authorization header to a Principal; `tokens=None` means auth is off."""

    def __init__(self, tokens: dict[str, Principal] | None) -> None:
        self.tokens = tokens

    @property
    def enabled(self) -> bool:
        return self.tokens is not None

    def principal(self, authorization: str | None) -> Principal:
        if self.tokens is None:
            return ANONYMOUS
        if not authorization:
            raise UnauthenticatedError("missing bearer token", hint="send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthenticatedError("malformed Authorization header; expected 'Bearer <token>'")
        found = None
        for known, principal in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        if found is None:
            raise UnauthenticatedError("unknown or revoked token")
        return found

    def require(self, authorization: str | None, role: str) -> Principal:
        principal = self.principal(authorization)
        if not principal.allows(role):
            raise PermissionDeniedError(
                f"role {principal.role!r} may not do this; it needs {role!r}",
                detail={"role": principal.role, "required": role},
            )
        return principal
