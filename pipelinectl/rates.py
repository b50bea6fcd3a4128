"""Rates (`50/s`, `3000/m`, `1/h`): the one place that reads and checks them.

`pipelinectl limit STAGE --rate R [--burst N]` and the control plane's API both
call `rate_limit`, so the CLI refuses a bad rate before anything is sent and the
server refuses the same rates from any other client. A rate is a count of items
per second, minute or hour; the burst is how many items may start back to back
after a quiet spell (the token bucket's size), one second's worth by default.
"""

from __future__ import annotations

import math
import re

from .errors import UsageError
from .model import RateLimit

RATE_EXAMPLES = "e.g. 50/s, 3000/m, 1/h"
PERIODS = {"s": 1, "m": 60, "h": 3600}
_NAMES = {"s": "s", "sec": "s", "second": "s", "m": "m", "min": "m", "minute": "m", "h": "h", "hour": "h"}
_RATE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")
MAX_PER_SECOND = 1_000_000
MAX_BURST = 1_000_000


def parse_rate(text: str, option: str = "--rate") -> tuple[float, str]:
    """`50/s` -> (50.0, "s"); zero, negative, an unknown period or junk is a one-line UsageError."""
    found = _RATE.match(str(text).lower())
    unit = _NAMES.get(found.group(2)) if found else None
    if found is None or unit is None:
        raise UsageError(f"{option} must be a count per second, minute or hour ({RATE_EXAMPLES}), got {str(text)[:40]!r}")
    count = float(found.group(1))
    if count <= 0:
        raise UsageError(f"{option} must be more than zero, got {text.strip()!r}",
                         hint="to remove a stage's rate limit: pipelinectl limit STAGE --clear")
    if count / PERIODS[unit] > MAX_PER_SECOND:
        raise UsageError(f"{option} {text.strip()} is more than {MAX_PER_SECOND:,} items per second")
    return count, unit


def default_burst(per_second: float) -> int:
    """One second's worth of the rate, at least 1: the burst when none is given."""
    return max(1, math.ceil(per_second))


def rate_limit(rate: str, burst: int | None = None, option: str = "--rate") -> RateLimit:
    """The RateLimit a rate and optional burst mean, in canonical form (`3000/m`, per_second 50.0)."""
    count, unit = parse_rate(rate, option)
    per_second = count / PERIODS[unit]
    if burst is None:
        burst = default_burst(per_second)
    elif isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
        raise UsageError(f"--burst must be a whole number from 1 to {MAX_BURST:,}, got {burst!r}")
    return RateLimit(rate=f"{count:g}/{unit}", per_second=per_second, burst=burst)
