"""The conventions an application opts into, in one place: keys, fields, and the Lua scripts that keep them.

Redis Streams has no pause switch, no parallelism setting and no dead-letter
queue. pipelinectl defines them on plain Redis data, documented in
docs/plugins/redis.md precisely enough for any consumer to follow:

- The **stage hash** `pipelinectl:stage:{STREAM}:GROUP` holds what operators set for one
  consumer group: `paused` ("1" or absent), `paused_until` (ms since the epoch; absent:
  until resumed), `parallelism` (entries each consumer processes at once), `version`
  (bumped on every change: the If-Match of pause/resume/scale) and the dead-letter
  convention (`dlq_stream`, `max_deliveries`, `min_idle_ms`) written by
  `pipelinectl redis dlq setup`. Consumers poll `paused`, `paused_until` and `parallelism`.
- A **dead-letter entry** (in the stage's DLQ stream, default `STREAM:dlq:GROUP`) is the
  original entry's fields after meta fields named `pipelinectl-dlq:*`, the last of which is
  `pipelinectl-dlq:original` (`present` or `gone`).
- **Copies** that pipelinectl adds to a stream (replay, redrive) carry
  `pipelinectl:replay-of` / `pipelinectl:redrive-of` (where they come from) and
  `pipelinectl:for-group` (the one group they are for: other groups acknowledge them
  without processing).

Every change is one Lua script, so it is atomic: an entry is in the source group's
pending list or in the DLQ, never both and never neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PREFIX = "pipelinectl"
DLQ_META = "pipelinectl-dlq:"
DLQ_LAST_META = "pipelinectl-dlq:original"
FOR_GROUP = "pipelinectl:for-group"
REPLAY_OF = "pipelinectl:replay-of"
REDRIVE_OF = "pipelinectl:redrive-of"
DLQ_STREAMS = "pipelinectl:dlq-streams"  # a set of every DLQ stream set up (kept out of pipelines)

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_MIN_IDLE_MS = 60_000
DEFAULT_MAX_PARALLELISM = 64
DEFAULT_REPLAY_DEDUPE_SECONDS = 7 * 24 * 3600


def stage_key(stream: str, group: str) -> str:
    """The stage hash of a consumer group: `pipelinectl:stage:{STREAM}:GROUP`."""
    return f"{PREFIX}:stage:{{{stream}}}:{group}"


def replayed_key(stream: str, group: str) -> str:
    """Replay dedupe: a hash original id -> copy id, per stream and group."""
    return f"{PREFIX}:replayed:{{{stream}}}:{group}"


def redriven_key(dlq_stream: str) -> str:
    """Redrive record of a DLQ stream: DLQ entry id -> the copy's id, kept a day (a lost answer is not a lost redrive)."""
    return f"{PREFIX}:redriven:{{{dlq_stream}}}"


def default_dlq_stream(stream: str, group: str) -> str:
    return f"{stream}:dlq:{group}"


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def id_time(entry_id: str) -> datetime | None:
    """The time in a stream id (its milliseconds part)."""
    try:
        return datetime.fromtimestamp(int(entry_id.split("-", 1)[0]) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def parse_id(entry_id: str) -> tuple[int, int]:
    """`ms-seq` (or `ms`, which Redis reads as `ms-0`) as a pair that sorts like Redis ids."""
    ms, _, seq = entry_id.partition("-")
    if not ms.isdigit() or (seq and not seq.isdigit()):
        raise ValueError(entry_id)
    return int(ms), int(seq or 0)


def format_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


MAX_SEQ = 2**64 - 1


def previous_id(entry_id: str) -> str:
    """The greatest id before this one (what XGROUP SETID needs so that `entry_id` is delivered again)."""
    ms, seq = parse_id(entry_id)
    if seq > 0:
        return format_id(ms, seq - 1)
    if ms > 0:
        return format_id(ms - 1, MAX_SEQ)
    return "0-0"


def ms_id(when: datetime) -> str:
    """The first id of a millisecond: stream ids are times."""
    return format_id(int(when.timestamp() * 1000), 0)


# -- the stage hash ---------------------------------------------------------------------------------------
@dataclass
class StageSettings:
    """What the stage hash says (absent fields: defaults)."""

    paused: bool = False
    paused_until_ms: int | None = None
    parallelism: int | None = None
    max_parallelism: int = DEFAULT_MAX_PARALLELISM
    version: int = 0
    dlq_stream: str | None = None
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    min_idle_ms: int = DEFAULT_MIN_IDLE_MS
    raw: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, data: dict[Any, Any]) -> StageSettings:
        raw = {text(k): text(v) for k, v in (data or {}).items()}

        def number(name: str, default: int | None) -> int | None:
            try:
                return int(raw[name]) if raw.get(name, "") != "" else default
            except ValueError:
                return default

        return cls(
            paused=raw.get("paused") == "1",
            paused_until_ms=number("paused_until", None),
            parallelism=number("parallelism", None),
            max_parallelism=number("max_parallelism", DEFAULT_MAX_PARALLELISM) or DEFAULT_MAX_PARALLELISM,
            version=number("version", 0) or 0,
            dlq_stream=raw.get("dlq_stream") or None,
            max_deliveries=number("max_deliveries", DEFAULT_MAX_DELIVERIES) or DEFAULT_MAX_DELIVERIES,
            min_idle_ms=number("min_idle_ms", DEFAULT_MIN_IDLE_MS) or 0,
            raw=raw,
        )

    def paused_now(self, now_ms: int) -> bool:
        """Paused, and not past `paused_until` (a consumer resumes by itself then)."""
        return self.paused and (self.paused_until_ms is None or now_ms < self.paused_until_ms)


# Set fields of a stage hash if its version is the expected one; bump the version.
# KEYS[1] stage hash; ARGV[1] expected version ('' = any); ARGV[2] JSON {field: value | false (delete)}.
# -> {'ok', new_version} | {'stale', current_version}
SET_STAGE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then
  return {'stale', current}
end
local changes = cjson.decode(ARGV[2])
for name, value in pairs(changes) do
  if value == false then
    redis.call('HDEL', KEYS[1], name)
  else
    redis.call('HSET', KEYS[1], name, tostring(value))
  end
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'version', current + 1, 'updated_at', t[1] * 1000 + math.floor(t[2] / 1000))
return {'ok', current + 1}
"""

# -- dead letters -----------------------------------------------------------------------------------------
# Move entries delivered max_deliveries times (and idle min_idle_ms) from a group's pending list to its DLQ.
# KEYS[1] source stream, KEYS[2] DLQ stream; ARGV: group, max_deliveries, min_idle_ms, reason, id...
# Each id is checked again here (still pending, count, idle), so a second sweep cannot move it twice.
# -> {source id, dlq id, ...} of what was moved
SWEEP = """
local src, dlq = KEYS[1], KEYS[2]
local group, maxd, idle = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local moved = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', src, group, 'IDLE', idle, id, id, 1)
  if #p == 1 and tonumber(p[1][4]) >= maxd then
    local f = {'pipelinectl-dlq:stream', src, 'pipelinectl-dlq:group', group,
               'pipelinectl-dlq:consumer', p[1][2], 'pipelinectl-dlq:id', id,
               'pipelinectl-dlq:deliveries', tostring(p[1][4]), 'pipelinectl-dlq:idle-ms', tostring(p[1][3]),
               'pipelinectl-dlq:kind', 'persistent', 'pipelinectl-dlq:reason', ARGV[4]}
    local e = redis.call('XRANGE', src, id, id)
    if #e == 1 then
      table.insert(f, 'pipelinectl-dlq:original'); table.insert(f, 'present')
      for _, v in ipairs(e[1][2]) do table.insert(f, v) end
    else
      table.insert(f, 'pipelinectl-dlq:original'); table.insert(f, 'gone')
    end
    local dead = redis.call('XADD', dlq, '*', unpack(f))
    redis.call('XACK', src, group, id)
    table.insert(moved, id); table.insert(moved, dead)
  end
end
return moved
"""

# Put a dead-letter entry back into its source stream, then delete it from the DLQ: one atomic step.
# KEYS[1] DLQ stream, KEYS[2] source stream, KEYS[3] redrive record (DLQ id -> copy id, for a day);
# ARGV[1] DLQ entry id.
# -> {'ok', new id} (also when an earlier run whose answer was lost did it) | {'missing'} (purged)
#    | {'gone'} (no original payload) | {'nostream'} | {'other', stream} (the entry belongs to another stream)
REDRIVE = """
local done = redis.call('HGET', KEYS[3], ARGV[1])
if done then return {'ok', done} end
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return {'missing'} end
local f = e[1][2]
local meta, out, body = {}, {}, false
for i = 1, #f, 2 do
  local k, v = f[i], f[i + 1]
  if body then
    if k ~= 'pipelinectl:redrive-of' and k ~= 'pipelinectl:for-group' then
      table.insert(out, k); table.insert(out, v)
    end
  else
    meta[k] = v
    if k == 'pipelinectl-dlq:original' then body = true end
  end
end
if meta['pipelinectl-dlq:stream'] ~= KEYS[2] then return {'other', meta['pipelinectl-dlq:stream'] or ''} end
if meta['pipelinectl-dlq:original'] ~= 'present' or #out == 0 then return {'gone'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'nostream'} end
table.insert(out, 'pipelinectl:redrive-of'); table.insert(out, KEYS[1] .. '/' .. ARGV[1])
table.insert(out, 'pipelinectl:for-group'); table.insert(out, meta['pipelinectl-dlq:group'] or '')
local new = redis.call('XADD', KEYS[2], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], new)
redis.call('PEXPIRE', KEYS[3], 86400000)
return {'ok', new}
"""

# -- replay -----------------------------------------------------------------------------------------------
# Republish entries of a stream into it again for one group, each original at most once (dedupe hash).
# KEYS[1] stream, KEYS[2] dedupe hash; ARGV: group, ttl_ms, id...
# -> {replayed, skipped, missing}
REPUBLISH = """
local src, seen = KEYS[1], KEYS[2]
local group, ttl = ARGV[1], tonumber(ARGV[2])
local replayed, skipped, missing = 0, 0, 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local e = redis.call('XRANGE', src, id, id)
  if #e == 0 then
    missing = missing + 1
  else
    local f, origin, out = e[1][2], id, {}
    for j = 1, #f, 2 do
      if f[j] == 'pipelinectl:replay-of' then
        origin = f[j + 1]
      elseif f[j] ~= 'pipelinectl:for-group' then
        table.insert(out, f[j]); table.insert(out, f[j + 1])
      end
    end
    if redis.call('HEXISTS', seen, origin) == 1 then
      skipped = skipped + 1
    else
      table.insert(out, 'pipelinectl:replay-of'); table.insert(out, origin)
      table.insert(out, 'pipelinectl:for-group'); table.insert(out, group)
      local new = redis.call('XADD', src, '*', unpack(out))
      redis.call('HSET', seen, origin, new)
      replayed = replayed + 1
    end
  end
end
if replayed > 0 then redis.call('PEXPIRE', seen, ttl) end
return {replayed, skipped, missing}
"""

# Rewind a group (XGROUP SETID) only if it has not moved since the replay was planned.
# KEYS[1] stream; ARGV: group, expected last-delivered-id, new id, entries-read ('' = let Redis work it out)
# -> {'ok'} | {'moved', last-delivered-id} | {'nogroup'}
REWIND = """
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local m = {}
  for j = 1, #g, 2 do m[g[j]] = g[j + 1] end
  if m['name'] == ARGV[1] then
    if m['last-delivered-id'] ~= ARGV[2] then return {'moved', m['last-delivered-id']} end
    if ARGV[4] ~= '' then
      redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ARGV[3], 'ENTRIESREAD', ARGV[4])
    else
      redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ARGV[3])
    end
    return {'ok'}
  end
end
return {'nogroup'}
"""


@dataclass
class DeadEntry:
    """One DLQ stream entry, decoded: meta fields, then the original's fields."""

    dlq_stream: str
    id: str
    meta: dict[str, str]
    fields: list[tuple[bytes, bytes]]

    @property
    def stream(self) -> str:
        return self.meta.get("pipelinectl-dlq:stream", "")

    @property
    def group(self) -> str:
        return self.meta.get("pipelinectl-dlq:group", "")

    @property
    def original_id(self) -> str:
        return self.meta.get("pipelinectl-dlq:id", "")

    @property
    def deliveries(self) -> int:
        try:
            return int(self.meta.get("pipelinectl-dlq:deliveries", "1"))
        except ValueError:
            return 1

    @property
    def kind(self) -> str:
        return self.meta.get("pipelinectl-dlq:kind") or "persistent"

    @property
    def present(self) -> bool:
        return self.meta.get(DLQ_LAST_META) == "present"


def parse_dead_entry(dlq_stream: str, entry_id: Any, raw_fields: Any) -> DeadEntry:
    """Split a DLQ entry's fields into meta (up to `pipelinectl-dlq:original`) and the original's fields."""
    pairs: list[tuple[bytes, bytes]]
    if isinstance(raw_fields, dict):
        pairs = list(raw_fields.items())
    else:
        flat = list(raw_fields or [])
        pairs = list(zip(flat[0::2], flat[1::2], strict=False))
    meta: dict[str, str] = {}
    body: list[tuple[bytes, bytes]] = []
    in_body = False
    for key, value in pairs:
        if in_body:
            body.append((key, value))
            continue
        name = text(key)
        meta[name] = text(value)
        if name == DLQ_LAST_META:
            in_body = True
    if not in_body:  # not written by the convention: all of it is payload
        body, meta = pairs, {}
    return DeadEntry(dlq_stream=dlq_stream, id=text(entry_id), meta=meta, fields=body)


def fields_view(fields: list[tuple[bytes, bytes]], limit: int | None = None) -> tuple[Any, dict[str, Any]]:
    """An entry's fields for display: {field: value} (a list of pairs if a field repeats); bytes as text or base64."""
    import base64

    info: dict[str, Any] = {"payload_encoding": "utf-8", "payload_size": sum(len(k) + len(v) for k, v in fields)}
    shown: list[tuple[str, str]] = []
    for key, value in fields:
        parts = []
        for raw in (key, value):
            try:
                part = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError:
                part = "base64:" + base64.b64encode(raw).decode()
                info["payload_encoding"] = "base64"
            if limit is not None and len(part) > limit:
                part = part[:limit]
                info["payload_truncated"] = True
            parts.append(part)
        shown.append((parts[0], parts[1]))
    names = [k for k, _ in shown]
    if len(set(names)) == len(names):
        return dict(shown), info
    return [list(p) for p in shown], info
