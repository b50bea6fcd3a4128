"""Times: the one place that parses and formats them. Also durations, ranges and `key=value` selectors.

Two kinds of input, two parsers, both here:

- `parse_time`: what an operator types (below); a bad value is a one-line UsageError.
- `parse_timestamp`: what a control plane or engine sends (RFC 3339); a bad value is a
  ValueError, which a driver reports as an answer it did not understand.

`format_time` is the one formatter: RFC 3339 in UTC with a `Z`, the only time format
machine output uses (`timespec="seconds"` for the same form in human messages).

Accepted times (always returned timezone-aware, in UTC):

- RFC 3339: `2026-05-01T12:00:00Z`, `2026-05-01T14:00:00+02:00`, `2026-05-01 12:00`
  (no zone means UTC: runbooks are written in UTC);
- a plain date: `2026-05-01` (midnight UTC);
- `now`, `today` (midnight UTC), `yesterday`;
- relative: `-2h`, `+30m`, `1d`, `1h30m`, `90s`, `2w`. A sign says past (`-`)
  or future (`+`); without one, the caller's `default` direction applies
  (past for `--since`/`--from`, future for `--until` of a pause).

Every failure is a one-line `UsageError` naming the option and showing a good
example, raised before anything is sent to a control plane.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from .errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)([smhdw]))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
TIME_EXAMPLES = "e.g. 2026-05-01, 2026-05-01T12:00:00Z, -2h, 30m, now"
DURATION_EXAMPLES = "e.g. 30s, 5m, 1h30m, 2d"


def format_time(value: datetime | None, *, timespec: str = "auto") -> str | None:
    """RFC 3339 in UTC with a `Z`; a naive datetime is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_timestamp(value: str | datetime | None) -> datetime | None:
    """A machine timestamp (RFC 3339; no zone means UTC) as an aware datetime; None stays None."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)  # Python 3.11+ reads a trailing Z
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def parse_duration(text: str, *, option: str = "duration", allow_zero: bool = False) -> timedelta:
    """`30s`, `5m`, `1h30m`, `2d`, `1w`; a bare number means seconds."""
    raw = (text or "").strip().lower()
    if not raw:
        raise UsageError(f"{option}: empty duration ({DURATION_EXAMPLES})")
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):  # a bare number means seconds (no nan/inf/1e400)
        seconds = float(raw)
    elif _DURATION.match(raw):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(raw))
    else:
        raise UsageError(f"{option}: '{text}' is not a duration ({DURATION_EXAMPLES})")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise UsageError(f"{option}: duration must be positive, got '{text}'")
    if seconds > 400 * 86400:
        raise UsageError(f"{option}: duration '{text}' is longer than 400 days")
    return timedelta(seconds=seconds)


def parse_time(text: str | None, option: str = "time", *, now: datetime | None = None,
               default: str = "past") -> datetime | None:
    """Parse an absolute or relative time to an aware UTC datetime (see module doc); None stays None."""
    if default not in ("past", "future"):
        raise ValueError(default)
    if text is None:
        return None
    raw = (text or "").strip()
    if not raw:
        raise UsageError(f"{option}: empty time ({TIME_EXAMPLES})")
    lowered = raw.lower()
    current = _now(now)
    if lowered == "now":
        return current
    if lowered in ("today", "yesterday"):
        midnight = datetime.combine(current.date(), time(0), tzinfo=UTC)
        return midnight if lowered == "today" else midnight - timedelta(days=1)
    sign = lowered[0] if lowered[0] in "+-" else ""
    body = lowered[1:] if sign else lowered
    if body and _DURATION.match(body):
        delta = parse_duration(body, option=option, allow_zero=True)
        future = sign == "+" or (not sign and default == "future")
        try:
            return current + delta if future else current - delta
        except OverflowError:
            raise UsageError(f"{option}: '{text}' is out of range") from None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = date.fromisoformat(raw)
            return datetime.combine(day, time(0), tzinfo=UTC)
        if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", raw):
            raise ValueError(raw)
        normal = raw[:10] + "T" + raw[11:]
        parsed = datetime.fromisoformat(normal[:-1] + "+00:00" if normal[-1] in "zZ" else normal)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a time ({TIME_EXAMPLES})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"{option}: '{text}' is out of range") from None


def parse_range(start: str | None, end: str | None, start_option: str = "--from",
                end_option: str = "--to", *, now: datetime | None = None,
                require_both: bool = False) -> tuple[datetime | None, datetime | None]:
    """Parse a time range; an end at or before its start is a usage error."""
    current = _now(now)
    if require_both and (start is None) != (end is None):
        missing = end_option if end is None else start_option
        raise UsageError(f"{missing} is required with {start_option if end is None else end_option}")
    begin = parse_time(start, start_option, now=current)
    finish = parse_time(end, end_option, now=current)
    if begin is not None and finish is not None and finish <= begin:
        raise UsageError(
            f"{end_option} ({_show(finish)}) must be after {start_option} ({_show(begin)})"
        )
    return begin, finish


def parse_offset_range(start: int | None, end: int | None, *, start_option: str = "--from-offset",
                       end_option: str = "--to-offset") -> tuple[int | None, int | None]:
    """Offsets: both or neither, non-negative, end after start (exclusive end)."""
    if (start is None) != (end is None):
        missing = end_option if end is None else start_option
        other = start_option if end is None else end_option
        raise UsageError(f"{missing} is required with {other}")
    if start is None or end is None:
        return None, None
    if start < 0 or end < 0:
        raise UsageError(f"offsets must be non-negative, got {start_option} {start} {end_option} {end}")
    if end <= start:
        raise UsageError(f"{end_option} ({end}) must be after {start_option} ({start})")
    return start, end


def _show(value: datetime) -> str:
    return format_time(value, timespec="seconds") or ""


# -- selectors --------------------------------------------------------------
_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")


def parse_selectors(args: list[str] | tuple[str, ...], *, allowed: tuple[str, ...],
                    option: str = "selector") -> dict[str, str]:
    """`stage=parse error-kind=validation` -> {"stage": "parse", "error_kind": "validation"}.

    Keys are matched with `-` and `_` treated alike; a repeated key, an unknown
    key or an empty value is a usage error naming the allowed keys.
    """
    allowed_norm = {a.replace("-", "_"): a for a in allowed}
    out: dict[str, str] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise UsageError(f"{option}: '{arg}' is not key=value (keys: {', '.join(allowed)})")
        if not _KEY.match(key):
            raise UsageError(f"{option}: '{key}' is not a valid key (keys: {', '.join(allowed)})")
        norm = key.replace("-", "_")
        if norm not in allowed_norm:
            raise UsageError(f"{option}: unknown key '{key}' (keys: {', '.join(allowed)})")
        value = value.strip()
        if not value:
            raise UsageError(f"{option}: '{key}=' needs a value")
        if norm in out and out[norm] != value:
            raise UsageError(f"{option}: '{key}' given twice ('{out[norm]}' and '{value}')")
        out[norm] = value
    return out


def target_name(arg: str, *, key: str = "stage") -> str:
    """A positional target given as `NAME` or `key=NAME` (`pause parse`, `pause stage=parse`)."""
    raw = (arg or "").strip()
    if "=" in raw:
        return parse_selectors([raw], allowed=(key,), option=key)[key.replace("-", "_")]
    if not raw:
        raise UsageError(f"{key}: empty name")
    return raw
