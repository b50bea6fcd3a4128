"""Reaching the broker: refused and black-holed ports within two seconds, credentials, URLs, cheap imports."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from pipelinectl_celery.link import display_url

from pipelinectl.plugin_api import DLQFilter, ExitCode, UnauthenticatedError, UnavailableError, UsageError
from pipelinectl.testing import BlackHole, ServerProcess, free_port


def _refused_port() -> int:
    return free_port()


@pytest.mark.parametrize("verb", ["status", "dlq"])
def test_a_refused_broker_is_unreachable_within_two_seconds(verb, make_driver):
    port = _refused_port()
    driver = make_driver(f"redis://:hunter22@127.0.0.1:{port}/0", timeout=30)
    started = time.monotonic()
    with pytest.raises(UnavailableError) as err:
        if verb == "status":
            driver.status()
        else:
            list(driver.dlq_list(DLQFilter(pipeline="celery", all=True)))
    elapsed = time.monotonic() - started
    driver.close()
    assert elapsed < 2, f"took {elapsed:.2f}s"
    assert err.value.exit_code == ExitCode.UNAVAILABLE
    line = err.value.one_line()
    assert f"127.0.0.1:{port}" in line and "hunter22" not in line and "cannot reach" in line


def test_a_black_holed_broker_is_unreachable_within_two_seconds(make_driver):
    with BlackHole() as port:
        driver = make_driver(f"redis://127.0.0.1:{port}/0", timeout=30)
        started = time.monotonic()
        with pytest.raises(UnavailableError) as err:
            driver.status()
        elapsed = time.monotonic() - started
        driver.close()
    assert elapsed < 2, f"took {elapsed:.2f}s"
    assert err.value.exit_code == ExitCode.UNAVAILABLE


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory, redis_binary):
    root = tmp_path_factory.mktemp("locked")
    port = free_port()
    server = ServerProcess([redis_binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root), "--save", "",
                            "--requirepass", "s3cret-pass"], port=port, root=root, name="redis-locked").start()
    yield f"redis://127.0.0.1:{port}/0"
    server.stop()


def test_the_token_is_the_redis_password_and_a_wrong_one_is_refused(locked_redis, make_driver):
    ok = make_driver(locked_redis, token="s3cret-pass")
    try:
        [pipeline] = ok.status()  # reached the broker; no workers on it
        assert pipeline.stages == [] and pipeline.details["workers"] == []
    finally:
        ok.close()
    for token in ("wrong-token-value", None):
        bad = make_driver(locked_redis, token=token)
        try:
            with pytest.raises(UnauthenticatedError) as err:
                bad.status()
        finally:
            bad.close()
        assert err.value.exit_code == ExitCode.PERMISSION
        assert "refused the credentials" in err.value.one_line() or "NOAUTH" in err.value.one_line()
        assert "wrong-token-value" not in err.value.one_line() and "s3cret" not in err.value.one_line()


def test_a_wrong_password_through_the_cli_exits_5_and_is_never_printed(locked_redis, tmp_path):
    from pipelinectl.testing import CliEnv

    cli = CliEnv(tmp_path / "cli")
    cli.set_context("locked", locked_redis, token="wrong-secret-999", extra_args=("--driver", "celery"))
    denied = cli.run("-v", "status")
    assert denied.rc == 5, denied
    assert "refused the credentials" in denied.stderr
    assert "wrong-secret-999" not in denied.output and "s3cret-pass" not in denied.output
    cli.set_context("locked", locked_redis, token="s3cret-pass", extra_args=("--driver", "celery"))
    allowed = cli.run("-v", "dlq", "list", "-o", "json")
    assert allowed.rc == 0 and allowed.json()["items"] == [] and "s3cret-pass" not in allowed.output


def test_urls_are_checked_and_shown_without_credentials(make_driver):
    assert display_url("redis://user:pw@host:6380/2") == "redis://host:6380/2"
    with pytest.raises(UsageError, match="not a Redis URL"):
        make_driver("amqp://guest@rabbit:5672//")
    with pytest.raises(UsageError, match="database number"):
        make_driver("redis://127.0.0.1:6379/queue")
    with pytest.raises(UsageError, match="result_backend"):
        make_driver("redis://127.0.0.1:6379/0", result_backend="db+postgresql://x/y")
    with pytest.raises(UsageError, match="one Celery app"):
        make_driver("redis://127.0.0.1:6379/0", pipeline="a,b")


def test_the_driver_module_and_command_group_are_cheap_to_import():
    """Celery, kombu and redis-py load only inside the verbs that use them."""
    code = ("import sys; import pipelinectl_celery.driver, pipelinectl_celery.commands; "
            "heavy = [m for m in ('celery', 'kombu', 'redis', 'billiard') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_help_and_completion_do_not_import_celery():
    for argv in (["--help"], ["celery", "--help"], ["celery", "revoke", "--help"]):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipelinectl", *argv],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
        assert done.returncode == 0, done.stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
        assert not {"celery", "kombu", "redis"} & imported, argv


def test_a_driver_kept_across_a_broker_restart_recovers(redis_binary, tmp_path, make_driver):
    """The dashboard keeps one driver for hours: a broker restart is reported, then simply works again."""
    from pathlib import Path

    from pipelinectl_celery.testing import WorkerGroup

    port = free_port()
    server = ServerProcess([redis_binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                            "--save", ""], port=port, root=tmp_path, name="redis-restart").start()
    url = f"redis://127.0.0.1:{port}/0"
    group = WorkerGroup(url, tmp_path, app="celeryapp", app_dir=Path(__file__).parent)
    try:
        node = group.start("r1", "rs.q")
        driver = make_driver(url)
        assert driver.get_stage("celery", "rs.q").details["consumers"] == 1
        server.stop()
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            driver.status()
        assert time.monotonic() - started < 2
        server.start()
        deadline = time.monotonic() + 60
        while node not in group.online() and time.monotonic() < deadline:  # the worker reconnects by itself
            time.sleep(0.5)
        stage = driver.get_stage("celery", "rs.q")
        assert [w["name"] for w in stage.details["workers"]] == [node]
    finally:
        group.stop_all()
        server.stop()
