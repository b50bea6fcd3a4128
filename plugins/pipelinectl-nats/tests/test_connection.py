"""Reaching the server: credentials, refused connections, and what errors say (never a secret)."""

from __future__ import annotations

import pytest
from pipelinectl_nats.driver import NatsControlPlane
from pipelinectl_nats.link import display_url

from pipelinectl.plugin_api import Connection, ExitCode, UnauthenticatedError, UnavailableError

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def _driver(url: str, token: str | None = None, **settings) -> NatsControlPlane:
    d = NatsControlPlane(Connection(context="t", driver="nats", url=url, token=lambda: token,
                                    settings=settings, timeout=5))
    d.progress = None
    return d


def test_token_auth_and_a_wrong_token(server_factory):
    srv = server_factory("--auth", "s3cret-token")
    ok = _driver(srv.url, "s3cret-token")
    try:
        assert ok.status() == []  # reached JetStream; no streams yet
    finally:
        ok.close()
    bad = _driver(srv.url, "wrong-token-value")
    try:
        with pytest.raises(UnauthenticatedError) as err:
            bad.status()
    finally:
        bad.close()
    assert err.value.exit_code == ExitCode.PERMISSION
    assert "refused the credentials" in err.value.one_line()
    assert "wrong-token-value" not in err.value.one_line() and "s3cret" not in err.value.one_line()


def test_user_password_from_env(server_factory, monkeypatch):
    srv = server_factory("--user", "ops", "--pass", "pw-from-env")
    monkeypatch.setenv("NATS_TEST_PASSWORD", "pw-from-env")
    d = _driver(srv.url, user="ops", password_env="NATS_TEST_PASSWORD")
    try:
        assert d.status() == []
    finally:
        d.close()


def test_connection_refused_is_unavailable_and_fast():
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = _driver(f"nats://user:hunter22@127.0.0.1:{port}")
    started = time.monotonic()
    try:
        with pytest.raises(UnavailableError) as err:
            d.status()
    finally:
        d.close()
    assert time.monotonic() - started < 2
    assert err.value.exit_code == ExitCode.UNAVAILABLE
    assert "hunter22" not in err.value.one_line() and f"127.0.0.1:{port}" in err.value.one_line()


def test_a_server_that_never_accepts_is_reported_within_two_seconds():
    import time

    from pipelinectl.testing import BlackHole

    with BlackHole() as port:
        d = _driver(f"nats://127.0.0.1:{port}")
        started = time.monotonic()
        try:
            with pytest.raises(UnavailableError) as err:
                d.status()
        finally:
            d.close()
        elapsed = time.monotonic() - started
    assert elapsed < 2, f"took {elapsed:.2f}s"
    assert err.value.exit_code == ExitCode.UNAVAILABLE


def test_display_url_strips_credentials():
    assert display_url("nats://u:p@a:4222, tls://tok@b:4223") == "nats://a:4222,tls://b:4223"
