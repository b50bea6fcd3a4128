"""Reaching the server: passwords and ACL users, refused and black-holed ports, TLS; never a secret in an error."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import astuple

import pytest
from pipelinectl_redis.link import Link, display_url, tls_options
from pipelinectl_redis.testing import make_driver, start_redis

from pipelinectl.plugin_api import (
    Connection,
    ExitCode,
    UnauthenticatedError,
    UnavailableError,
    UnreachableError,
    UsageError,
)
from pipelinectl.testing import BlackHole, free_port, make_test_ca


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    srv = start_redis(tmp_path_factory.mktemp("redis-auth"), "--requirepass", "s3cret-pass",
                      name="redis-auth")
    import redis

    admin = redis.Redis(port=srv.port, password="s3cret-pass")
    admin.acl_setuser("ops", enabled=True, passwords=["+ops-pass"], keys=["*"], commands=["+@all"])
    admin.acl_setuser("viewer", enabled=True, passwords=["+view-pass"], keys=["*"], commands=["+@read", "+ping"])
    admin.xgroup_create("au:in", "parse", id="0", mkstream=True)
    admin.close()
    yield srv
    srv.stop()


def _status(url: str, token: str | None = None, **settings):
    d = make_driver(url, "au", timeout=5, token=token, **settings)
    try:
        return d.status()
    finally:
        d.close()


def test_password_and_acl_user(auth_server, monkeypatch):
    assert [s.name for s in _status(auth_server.url, "s3cret-pass")[0].stages] == ["parse"]
    assert _status(auth_server.url, "ops-pass", user="ops")[0].name == "au"
    monkeypatch.setenv("REDIS_TEST_PASSWORD", "ops-pass")
    assert _status(auth_server.url, user="ops", password_env="REDIS_TEST_PASSWORD")[0].name == "au"
    # a password in the URL works and is never shown
    url = f"redis://ops:ops-pass@127.0.0.1:{auth_server.port}"
    assert _status(url)[0].name == "au"


@pytest.mark.parametrize(("token", "settings"), [(None, {}), ("wrong-secret-999", {}), ("nope-777", {"user": "ops"})])
def test_refused_credentials_exit_5_without_the_secret(auth_server, token, settings):
    with pytest.raises(UnauthenticatedError) as err:
        _status(auth_server.url, token, **settings)
    assert err.value.exit_code == ExitCode.PERMISSION
    line = err.value.one_line()
    assert "refused the credentials" in line or "NOAUTH" in line or "refused" in line
    assert "wrong-secret-999" not in line and "nope-777" not in line and "s3cret" not in line


def test_a_user_without_write_permission_is_told_so(auth_server):
    d = make_driver(auth_server.url, "au", timeout=5, token="view-pass", user="viewer")
    try:
        assert d.status()[0].name == "au"
        from pipelinectl.plugin_api import PermissionDeniedError

        with pytest.raises(PermissionDeniedError) as err:
            d.pause("au", "parse")
        assert err.value.exit_code == ExitCode.PERMISSION
    finally:
        d.close()


def test_connection_refused_is_unreachable_within_two_seconds():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(UnreachableError) as err:
        _status(f"redis://u:hunter22@127.0.0.1:{port}")
    assert time.monotonic() - started < 2
    assert err.value.exit_code == ExitCode.UNAVAILABLE
    assert "hunter22" not in err.value.one_line() and f"127.0.0.1:{port}" in err.value.one_line()


def test_a_black_holed_port_is_reported_within_two_seconds():
    with BlackHole() as port:
        started = time.monotonic()
        with pytest.raises(UnreachableError) as err:
            _status(f"redis://127.0.0.1:{port}")
        elapsed = time.monotonic() - started
    assert elapsed < 2, f"took {elapsed:.2f}s"
    assert err.value.exit_code == ExitCode.UNAVAILABLE


def test_display_url_and_ssl_settings(tmp_path):
    assert display_url("rediss://user:pw@h:6380/2") == "rediss://h:6380/2"
    base = {"context": "c", "driver": "redis"}
    assert tls_options(Connection(url="redis://h", **base)) == {}
    assert tls_options(Connection(url="rediss://h", **base)) == {
        "ssl": True, "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    assert tls_options(Connection(url="rediss://h", insecure_skip_tls_verify=True, **base)) == {
        "ssl": True, "ssl_cert_reqs": "none", "ssl_check_hostname": False}
    with pytest.raises(UsageError, match="cannot load ca-file"):
        tls_options(Connection(url="rediss://h", ca_file=str(tmp_path / "missing.pem"), **base))
    with pytest.raises(UsageError, match="database number"):
        Link(Connection(url="redis://h/abc", **base)).client()



def _redis_has_tls() -> bool:
    from pipelinectl_redis.testing import REDIS_SERVER

    if REDIS_SERVER is None:
        return False
    linked = subprocess.run(["ldd", REDIS_SERVER], capture_output=True, text=True).stdout
    return "libssl" in linked


@pytest.mark.skipif(shutil.which("openssl") is None or not _redis_has_tls(),
                    reason="needs openssl and a redis-server built with TLS")
def test_tls_is_verified_against_the_context_ca(tmp_path):
    ca, cert, key = astuple(make_test_ca(tmp_path))
    srv = start_redis(tmp_path / "data", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                      "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", plain_port=False, name="redis-tls")
    try:
        import redis

        admin = redis.Redis(host="127.0.0.1", port=srv.port, ssl=True, ssl_ca_certs=str(ca))
        admin.xgroup_create("au:in", "parse", id="0", mkstream=True)
        admin.close()
        d = make_driver(srv.url, "au", timeout=5)
        d.connection.ca_file = str(ca)
        try:
            assert [s.name for s in d.status()[0].stages] == ["parse"]
        finally:
            d.close()
        with pytest.raises(UnavailableError, match="TLS") as err:
            _status(srv.url)  # the system store does not know the test CA
        assert err.value.exit_code == ExitCode.UNAVAILABLE
        d = make_driver(srv.url, "au", timeout=5)
        d.connection.insecure_skip_tls_verify = True
        try:
            assert d.status()[0].name == "au"
        finally:
            d.close()
        plain = make_driver(srv.url.replace("rediss://", "redis://"), "au", timeout=1)
        try:
            with pytest.raises(UnavailableError) as err:  # plain redis:// to a TLS port
                plain.status()
            assert "rediss://" in err.value.one_line()
        finally:
            plain.close()
    finally:
        srv.stop()
