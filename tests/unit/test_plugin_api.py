"""The public plugin API: what plugins may import, and the retry policy every driver shares."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pipelinectl import plugin_api
from pipelinectl.errors import ExitCode, UnavailableError, UnreachableError, UsageError
from pipelinectl.plane import Connection
from pipelinectl.transport import UNREACHABLE_WITHIN, Backoff, connect_timeout, retry

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"pipelinectl", "pipelinectl.plugin_api", "pipelinectl.testing"}


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pipelinectl":
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pipelinectl":
                    found.append((node.lineno, alias.name, []))
    return found


def _plugin_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "plugins").rglob("*.py") if ".venv" not in p.parts)


def test_first_party_plugins_import_only_the_public_api():
    assert _plugin_sources(), "no plugin sources found"
    offenders = []
    for path in _plugin_sources():
        for line, module, names in _imports(path):
            private = [n for n in names if n.startswith("_")]
            if module not in PUBLIC or private:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {module} {private or ''}")
    assert not offenders, "plugins must import pipelinectl.plugin_api (or .testing in tests):\n" + "\n".join(offenders)


def test_every_public_name_resolves():
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name
    with pytest.raises(AttributeError):
        plugin_api.no_such_name  # noqa: B018


def test_importing_the_api_stays_off_the_command_line_layer():
    """A driver module imports plugin_api on every verb: it must not pull typer, rich or httpx in."""
    code = ("import sys, pipelinectl.plugin_api; "
            "print(sorted(m for m in ('typer', 'rich', 'httpx', 'yaml', 'pipelinectl.cli.common') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_drivers_declare_the_url_schemes_they_serve():
    from pipelinectl.plugins import driver_url_schemes

    assert driver_url_schemes("http") == ("http", "https")
    assert driver_url_schemes("no-such-driver") == ()


# -- the retry policy ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _failing(errors: list[Exception], result: str = "ok"):
    calls = []

    def call() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return call, calls


def test_transient_failures_are_retried_until_they_pass():
    clock = Clock()
    call, calls = _failing([UnavailableError("503"), UnavailableError("503")])
    assert retry(call, timeout=30, sleep=clock.sleep, clock=clock) == "ok"
    assert len(calls) == 3 and len(clock.sleeps) == 2


def test_writes_that_are_not_idempotent_are_never_retried():
    clock = Clock()
    call, calls = _failing([UnavailableError("503")])
    with pytest.raises(UnavailableError):
        retry(call, timeout=30, idempotent=False, sleep=clock.sleep, clock=clock)
    assert len(calls) == 1


def test_final_errors_are_not_retried():
    clock = Clock()
    final = UnavailableError("bad certificate")
    final.retryable = False  # type: ignore[attr-defined]
    for error in (UsageError("bad input"), final):
        call, calls = _failing([error])
        with pytest.raises(type(error)):
            retry(call, timeout=30, sleep=clock.sleep, clock=clock)
        assert len(calls) == 1


def test_an_unreachable_plane_is_given_up_within_the_unreachable_budget():
    clock = Clock()
    call, calls = _failing([UnreachableError("refused") for _ in range(100)])
    with pytest.raises(UnreachableError) as info:
        retry(call, timeout=300, sleep=clock.sleep, clock=clock)
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert len(calls) > 1 and clock.now < UNREACHABLE_WITHIN


def test_retry_after_is_honoured_but_never_past_the_deadline():
    clock = Clock()
    throttled = UnavailableError("429")
    throttled.retry_after = 3.0  # type: ignore[attr-defined]
    call, _ = _failing([throttled])
    assert retry(call, timeout=30, sleep=clock.sleep, clock=clock) == "ok"
    assert clock.sleeps == [3.0]
    late = UnavailableError("429")
    late.retry_after = 60.0  # type: ignore[attr-defined]
    call, calls = _failing([late])
    with pytest.raises(UnavailableError):
        retry(call, timeout=10, sleep=clock.sleep, clock=clock)
    assert len(calls) == 1


def test_backoff_is_full_jitter_under_a_cap():
    backoff = Backoff(base=0.5, cap=2.0)
    for attempt in range(1, 10):
        for _ in range(20):
            assert 0 <= backoff.delay(attempt) <= min(2.0, 0.5 * 2 ** (attempt - 1))


def test_connect_timeout_comes_from_the_context_and_is_validated():
    def conn(**settings):
        return Connection(context="c", driver="x", url="x://y", settings=settings, timeout=30)

    assert connect_timeout(conn()) == 1.5
    assert connect_timeout(conn(connect_timeout=4)) == 4.0
    for bad in ("soon", 0, -1, 600):
        with pytest.raises(UsageError, match="connect_timeout"):
            connect_timeout(conn(connect_timeout=bad))


def test_http_api_refuses_an_oversized_url_as_usage_without_sending():
    """A 100k-character ID in a path is the operator's input, not a bug: exit 2, nothing sent."""
    import httpx

    from pipelinectl.transport import HttpApi

    sent = []
    api = HttpApi(Connection(context="c", driver="x", url="http://engine.test"),
                  transport=httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200)))
    with pytest.raises(UsageError) as info:
        api.request("GET", "/items/" + "x" * 100_000)
    assert info.value.exit_code == ExitCode.USAGE and len(info.value.one_line()) < 300
    assert sent == []
