"""Shell completion engine: answers `pipelinectl __complete SHELL ...` without importing typer.

The scripts in completions/ (the same text `pipelinectl completion SHELL` prints)
call this at every Tab. Commands, options and fixed option values come from the
table generated from the command tree (cli/_completion_data.py), so completing
them costs about one bare interpreter start. Context and driver names are read
locally; plugin command groups are read with typer once per installation change
and cached. Values only the control plane knows (pipelines, stages, DLQ, saga and
replay IDs) are fetched under a hard deadline and cached on disk for a few
seconds: a slow or unreachable plane yields stale or no candidates, never a hung
shell, and the next Tab within the TTL does not wait again.

Protocol (stdout): the first line is a directive for the script, `values`,
`files` or `dirs`; then one candidate per line, `VALUE<TAB>DESCRIPTION`.

    pipelinectl __complete bash LINE        # LINE: the command line up to the cursor
    pipelinectl __complete zsh|fish -- WORDS... CURRENT
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing itself is not imported: every Tab would pay for it
if TYPE_CHECKING:
    import threading
    from typing import Any

TIMEOUT_ENV = "PIPELINECTL_COMPLETE_TIMEOUT"  # seconds a control-plane lookup may take (default 1)
TTL_ENV = "PIPELINECTL_COMPLETE_TTL"  # seconds a looked-up answer is reused (default 10)
DEFAULT_TIMEOUT = 1.0
DEFAULT_TTL = 10.0
LOCAL_CAP = 3.0  # seconds loading the driver may take before the plane's own timeout starts
STALE_LIMIT = 24 * 3600.0  # older cached answers are dropped, not shown
MAX_DYNAMIC = 200  # candidates per lookup: enough to pick from, cheap to fetch
BASH_WORDBREAKS = "\"'><=;|&(:"
DYNAMIC_KINDS = ("pipeline", "stage", "dlq-id", "saga-id", "replay-id")


class Result:
    """Candidates for the word under the cursor, or a request for file-name completion."""

    def __init__(self, items: list[tuple[str, str]] | None = None, directive: str = "values") -> None:
        self.items = items or []
        self.directive = directive


class _State:
    """What the words before the cursor say: the command node and the values already given."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self.node = tree
        self.path: list[str] = []
        self.positionals = 0
        self.given: dict[str, str] = {}  # value kind or option -> last value given (pipeline, stage, --config)
        self.pending: tuple[str, str] | None = None  # (option, kind) awaiting its value
        self.dashdash = False


def _data() -> Any:
    from .cli import _completion_data

    return _completion_data


def _value_kind(node: dict[str, Any], name: str) -> str | None:
    """The kind of value an option takes ("" for free text), on this node or globally; None: a flag or unknown."""
    spec = node["options"].get(name) or _data().GLOBAL_OPTIONS.get(name)
    return None if spec is None else spec[0]


def _record(state: _State, option: str, kind: str, value: str) -> None:
    state.given[option] = value
    if kind:
        state.given[kind] = value


def parse(words: list[str]) -> _State:
    """Walk the completed words the way the real parser would, without importing it."""
    state = _State(_data().TREE)
    for word in words:
        if state.pending is not None:
            option, kind = state.pending
            _record(state, option, kind, word)
            state.pending = None
            continue
        if word == "--" and not state.dashdash:
            state.dashdash = True
            continue
        if word.startswith("-") and word != "-" and not state.dashdash:
            name, eq, value = word.partition("=")
            if not eq and not word.startswith("--") and len(word) > 2:  # -ojson, -pORDERS
                name, eq, value = word[:2], "=", word[2:]
            kind = _value_kind(state.node, name)
            if kind is not None:
                if eq:
                    _record(state, name, kind, value)
                else:
                    state.pending = (name, kind)
            continue
        commands = state.node["commands"]
        if commands and word in commands and state.positionals == 0:
            state.node = commands[word]
            state.path.append(word)
            continue
        if not state.path and state.positionals == 0:  # not built in: a plugin's command group?
            plugin = plugin_tree().get(word)
            if plugin is not None:
                state.node = plugin
                state.path.append(word)
                continue
        if state.positionals < len(state.node["args"]):
            kind = state.node["args"][state.positionals]
            if kind:
                state.given[kind] = word
        state.positionals += 1
    return state


def _prefixed(items: list[tuple[str, str]], prefix: str) -> list[tuple[str, str]]:
    return [(v, d) for v, d in items if v.startswith(prefix)]


def _option_items(node: dict[str, Any]) -> list[tuple[str, str]]:
    data = _data()
    items = [(name, spec[1]) for name, spec in node["options"].items()]
    seen = {name for name, _ in items}
    items += [(name, spec[1]) for name, spec in data.GLOBAL_OPTIONS.items() if name not in seen]
    if node is data.TREE:
        items.append(("--version", "print the version and exit"))
    return items


def complete(words: list[str], incomplete: str) -> Result:
    """Candidates for `incomplete`, given the words before it (program name excluded)."""
    state = parse(words)
    if state.pending is not None:
        option, kind = state.pending
        return value_items(kind, incomplete, state)
    if incomplete.startswith("-") and not state.dashdash:
        name, eq, value = incomplete.partition("=")
        if eq:
            kind = _value_kind(state.node, name)
            if kind is None:
                return Result()
            result = value_items(kind, value, state)
            result.items = [(f"{name}={v}", d) for v, d in result.items]
            return result
        if not incomplete.startswith("--") and len(incomplete) > 2:  # -oj: a short option's glued value
            kind = _value_kind(state.node, incomplete[:2])
            if kind is not None:
                result = value_items(kind, incomplete[2:], state)
                result.items = [(incomplete[:2] + v, d) for v, d in result.items]
                return result
        return Result(_prefixed(_option_items(state.node), incomplete))
    node = state.node
    if node["commands"] and state.positionals == 0:
        visible = [(name, sub["summary"]) for name, sub in node["commands"].items() if not sub["hidden"]]
        found = _prefixed(visible, incomplete)
        if not found and incomplete:  # aliases (resize, dlq show) complete once typed
            found = _prefixed([(n, s["summary"]) for n, s in node["commands"].items()], incomplete)
        if not found and incomplete and not state.path:  # plugins' groups: asked for only when nothing built in fits
            found = _prefixed([(n, s["summary"]) for n, s in plugin_tree().items()], incomplete)
        return Result(found)
    args = node["args"]
    if not args:
        return Result()
    index = state.positionals if state.positionals < len(args) else (len(args) - 1 if node["variadic"] else -1)
    if index < 0:
        return Result()
    return value_items(args[index], incomplete, state)


def value_items(kind: str | None, incomplete: str, state: _State) -> Result:
    data = _data()
    if not kind:
        return Result()
    if kind == "file":
        return Result(directive="files")
    if kind == "dir":
        return Result(directive="dirs")
    if kind.startswith("choice:"):  # a typer choice type: its values travel with the kind
        return Result(_prefixed([(v, "") for v in kind.removeprefix("choice:").split("|")], incomplete))
    if kind in data.CHOICES:
        return Result(_prefixed([(v, "") for v in data.CHOICES[kind]], incomplete))
    if kind == "context":
        return Result(_prefixed([(n, "") for n in context_names(state.given.get("--config"))], incomplete))
    if kind == "driver":
        return Result(_prefixed([(n, "") for n in driver_names()], incomplete))
    if kind in DYNAMIC_KINDS:
        return Result(_prefixed(dynamic_items(kind, state), incomplete))
    return Result()


# -- local values -------------------------------------------------------------------------------------
def context_names(config: str | None) -> list[str]:
    """Context names from the config file, cached by its size and mtime so YAML is parsed once per change."""
    from .paths import config_path

    path = config_path(config)
    try:
        info = path.stat()
    except OSError:
        return []
    key = f"contexts|{path}|{info.st_mtime_ns}|{info.st_size}"
    cached = _cache_get(key)
    if cached is not None:
        return [v for v, _ in _pairs(cached["values"])]
    try:
        with _quiet():
            from .config import load_config

            names = sorted(load_config(path).contexts)
    except Exception:  # a malformed config completes nothing; the command itself reports it
        return []
    _cache_put(key, [(n, "") for n in names])
    return names


def driver_names() -> list[str]:
    try:
        from .plugins import driver_names as names

        return names()
    except Exception:
        return ["http"]


def _install_stamp() -> str:
    """Changes when a distribution is installed or removed, or the plugin filter changes."""
    from .plugin_index import LOAD_PLUGINS_ENV, install_stamp

    return f"{os.environ.get(LOAD_PLUGINS_ENV)}|{install_stamp()}"


def plugin_tree() -> dict[str, Any]:
    """Completion entries of plugin command groups, built with typer once per installation change, then cached."""
    global _plugins
    if _plugins is not None:
        return _plugins
    key = f"plugins|{_install_stamp()}"
    entry = _cache_get(key)
    if entry is not None and isinstance(entry["values"], dict):
        _plugins = entry["values"]
        return _plugins
    import threading

    outcome: list[Any] = []

    def build() -> None:
        try:
            with _quiet():
                from .cli.completion import plugin_nodes

                outcome.append(plugin_nodes())
        except BaseException as exc:  # a broken plugin must not break the Tab
            outcome.append(exc)

    worker = threading.Thread(target=build, name="pipelinectl-plugins", daemon=True)
    worker.start()
    worker.join(LOCAL_CAP)
    _plugins = outcome[0] if outcome and isinstance(outcome[0], dict) else {}
    if outcome:  # built (or failed for good): remember it; a build cut short is tried again next Tab
        _cache_put(key, _plugins)
    else:
        global _abandoned
        _abandoned = True
    return _plugins


_plugins: dict[str, Any] | None = None


# -- control-plane values -------------------------------------------------------------------------------
def _float_env(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value >= 0 else default


def _config_stamp(config: str | None) -> str:
    """The config file and its mtime: switching the current context starts a new cache entry."""
    from .paths import config_path

    path = config_path(config)
    try:
        return f"{path}@{path.stat().st_mtime_ns}"
    except OSError:
        return str(path)


def dynamic_items(kind: str, state: _State) -> list[tuple[str, str]]:
    """Ask the current control plane, under a deadline; fall back to the cache (fresh, then stale)."""
    context = state.given.get("--context") or os.environ.get("PIPELINECTL_CONTEXT") or ""
    config = state.given.get("--config") or os.environ.get("PIPELINECTL_CONFIG") or ""
    pipeline = state.given.get("pipeline") or ""
    stage = (state.given.get("stage") or "") if kind == "dlq-id" else ""
    key = f"{kind}|{_config_stamp(config or None)}|{context}|{pipeline}|{stage}"
    entry = _cache_get(key)
    now = time.time()
    if entry is not None and now - entry["at"] <= _float_env(TTL_ENV, DEFAULT_TTL):
        return _pairs(entry["values"])
    import threading

    timeout = _float_env(TIMEOUT_ENV, DEFAULT_TIMEOUT)
    ready = threading.Event()  # set once the local work (imports, config, driver) is done
    outcome: list[Any] = []

    def fetch() -> None:
        try:
            with _quiet():
                outcome.append(_fetch(kind, context or None, config or None, pipeline or None, stage or None,
                                      max(timeout, 0.05), ready))
        except BaseException as exc:  # unreachable, unauthenticated, unsupported: nothing to offer
            outcome.append(exc)
        finally:
            ready.set()

    worker = threading.Thread(target=fetch, name="pipelinectl-complete", daemon=True)
    worker.start()
    # The plane gets `timeout` seconds; loading the driver first is local work, capped separately.
    ready.wait(LOCAL_CAP)
    worker.join(timeout)
    if outcome and isinstance(outcome[0], list):
        _cache_put(key, outcome[0])
        return outcome[0]
    global _abandoned
    _abandoned = worker.is_alive()
    # Keep what the plane said last (up to a day old), and remember this failure for one TTL
    # so the next Tab answers at once instead of waiting again.
    stale = _pairs(entry["values"]) if entry is not None else []
    _cache_put(key, stale, fetched=entry["fetched"] if entry is not None else now)
    return stale


_abandoned = False  # a lookup thread still running past the deadline: main() exits without waiting


def _fetch(kind: str, context: str | None, config: str | None, pipeline: str | None, stage: str | None,
           timeout: float, ready: threading.Event) -> list[tuple[str, str]]:
    from itertools import islice

    from .cli.options import GlobalOptions
    from .cli.session import Session

    session = Session(GlobalOptions(context=context, config=config, timeout=timeout))
    try:
        plane = session.plane  # imports the driver and reads the config: no network yet
        ready.set()
        if kind == "pipeline":
            return [(p.name, f"{len(p.stages)} stages") for p in plane.status()]
        if kind == "stage":
            if pipeline is None and session.context.pipeline:
                pipeline = session.context.pipeline
            pipelines = plane.status(pipeline)
            return [(s.name, f"{s.state}, {p.name}") for p in pipelines for s in p.stages]
        target = session.pipeline(pipeline)
        if kind == "dlq-id":
            from .model import DLQFilter

            items = plane.dlq_list(DLQFilter(pipeline=target, stage=stage), page_size=MAX_DYNAMIC)
            return [(i.id, f"{i.stage}: {i.error_kind}") for i in islice(items, MAX_DYNAMIC)]
        if kind == "saga-id":
            from .model import SagaFilter

            sagas = plane.saga_list(SagaFilter(pipeline=target), page_size=MAX_DYNAMIC)
            return [(s.id, f"{s.definition}: {s.status}") for s in islice(sagas, MAX_DYNAMIC)]
        if kind == "replay-id":
            return [(j.id, f"{j.stage}: {j.state}") for j in plane.replay_list(target)[:MAX_DYNAMIC]]
        return []
    finally:
        session.close()


class _quiet:
    """Warnings (an unprotected config file, an insecure context) must not scribble over the prompt."""

    def __enter__(self) -> None:
        self._saved = sys.stderr
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115

    def __exit__(self, *exc: object) -> None:
        sys.stderr.close()
        sys.stderr = self._saved


# -- the on-disk cache: one small JSON file in the XDG cache dir -----------------------------------------
def _cache_file() -> Any:
    from .paths import cache_dir

    return cache_dir() / "completion.json"


def _cache_load() -> dict[str, Any]:
    import json

    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cache_get(key: str) -> dict[str, Any] | None:
    """The entry for key: `at` (last asked), `fetched` (last answered) and `values`; None when over a day old."""
    entry = _cache_load().get(key)
    if not isinstance(entry, dict):
        return None
    at, fetched, values = entry.get("at"), entry.get("fetched"), entry.get("values")
    if not isinstance(at, (int, float)) or not isinstance(fetched, (int, float)) or values is None:
        return None
    if time.time() - fetched > STALE_LIMIT:
        return None
    return {"at": float(at), "fetched": float(fetched), "values": values}


def _pairs(values: Any) -> list[tuple[str, str]]:
    return [(str(v[0]), str(v[1])) for v in values if isinstance(v, list) and len(v) == 2]


def _cache_put(key: str, values: Any, *, fetched: float | None = None) -> None:
    """Write atomically (rename), dropping entries older than a day; a read-only disk just skips caching."""
    import json

    now = time.time()
    data = {k: v for k, v in _cache_load().items()
            if isinstance(v, dict) and isinstance(v.get("fetched"), (int, float)) and now - v["fetched"] < STALE_LIMIT}
    if isinstance(values, list):
        values = [list(v) for v in values]
    data[key] = {"at": now, "fetched": now if fetched is None else fetched, "values": values}
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # names of the user's planes: theirs only
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass


# -- shells -----------------------------------------------------------------------------------------------
def split_line(line: str) -> tuple[list[str], str]:
    """Split a bash command line (up to the cursor) into the completed words and the word under the cursor."""
    import shlex

    for closing in ("", '"', "'"):  # the cursor may sit inside an open quote
        try:
            words = shlex.split(line + closing)
            break
        except ValueError:
            continue
    else:
        words, closing = line.split(), ""
    at_new_word = not closing and line[-1:].isspace() and not line.endswith("\\ ")
    if at_new_word or not words:
        return words, ""
    return words[:-1], words[-1]


def _is_assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and name.isidentifier()


def _trim_for_bash(items: list[tuple[str, str]], incomplete: str) -> list[str]:
    """Bash replaces only the text after the last COMP_WORDBREAKS character (`--output=js` -> `js`)."""
    breaks = os.environ.get("PIPELINECTL_COMP_WORDBREAKS", BASH_WORDBREAKS)
    cut = max((incomplete.rfind(c) for c in breaks if not c.isspace()), default=-1)
    head = incomplete[: cut + 1]
    return [v[len(head):] if head and v.startswith(head) else v for v, _ in items]


def main(argv: list[str]) -> int:
    """`pipelinectl __complete SHELL ...`: print the directive and candidates; never fail loudly."""
    shell = argv[0] if argv else ""
    rest = argv[1:]
    try:
        if shell == "bash":
            words, incomplete = split_line(rest[0] if rest else "")
            while words and _is_assignment(words[0]):  # PIPELINECTL_CONTEXT=prod pipelinectl ...
                name, _, value = words.pop(0).partition("=")
                if name in ("PIPELINECTL_CONTEXT", "PIPELINECTL_CONFIG"):
                    os.environ[name] = value
            result = complete(words[1:], incomplete)
            lines = _trim_for_bash(result.items, incomplete)
        else:
            if rest[:1] == ["--"]:
                rest = rest[1:]
            words, incomplete = (rest[:-1], rest[-1]) if rest else ([], "")
            result = complete(words, incomplete)
            lines = [f"{v}\t{d}" if d else v for v, d in result.items]
        out = "\n".join([result.directive, *(line.replace("\n", " ") for line in lines)]) + "\n"
    except Exception:  # a broken table or cache must not break the shell: offer nothing
        out = "values\n"
    sys.stdout.write(out)
    sys.stdout.flush()
    if _abandoned:
        os._exit(0)  # a lookup thread is stuck in the network: do not wait for it
    return 0
