"""Exit codes, one-line errors, TLS, redaction and the audit log: the installed CLI against real servers.

Each documented exit code is produced the way an operator meets it: a wrong
name, a wrong token, a plane that is down or silent, a certificate nobody
trusts. Tokens are grepped for in everything the CLI printed.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import (
    cli_fixture,  # noqa: F401  (the `cli` fixture)
    validate_output,
)
from tests.support.server import free_port, start_server

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("errors-plane"))
    yield srv
    srv.stop()


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("error: "), result
    assert "Traceback" not in result.output
    return lines[0]


# -- usage (2) and not found (3) -------------------------------------------------------
@pytest.mark.parametrize(
    "args, fragment",
    [
        (("statsu",), "unknown command 'statsu'"),
        (("-o", "xml", "status"), "invalid value for -o"),
        (("--timeout", "soon", "status"), "not a number of seconds"),
        (("status", "--interval", "0"), "--interval"),
        (("status", "--no-such-flag"), "no-such-flag"),
    ],
)
def test_usage_errors_exit_2(cli, server, args, fragment):
    cli.set_context("demo", server.url, token=server.tokens["viewer"])
    result = cli.run(*args)
    assert result.rc == 2, result
    assert fragment in one_line_error(result)
    assert result.stdout == ""


# Bytes a shell can pass that no request can carry: invalid UTF-8 ($'\xff\xfe' arrives as surrogate
# escapes) and an ID longer than any URL. Each is a usage error in one line, whatever the verb.
LONG_ID = "a" * 100_000
BAD_ARGS = [
    ("replay", "cancel", "\udcff\udcfe"),
    ("dlq", "show", "dlq-\udcff"),
    ("saga", "force-fail", "saga-\udcfe", "--reason", "x", "--yes"),
    ("status", "-p", "orders\udcff"),
    ("--context", "\udcff", "status"),
    ("dlq", "list", "--stage", "\udcff"),
    ("replay", "cancel", LONG_ID),
    ("dlq", "show", LONG_ID),
    ("saga", "show", LONG_ID),
    ("pause", LONG_ID),
    ("dlq", "list", "--stage", LONG_ID),
]


@pytest.mark.parametrize("args", BAD_ARGS, ids=[" ".join(a)[:40].encode("ascii", "backslashreplace").decode()
                                               for a in BAD_ARGS])
def test_bad_bytes_and_oversized_arguments_are_usage_errors(cli, server, args):
    cli.set_context("demo", server.url, token=server.tokens["operator"], pipeline="orders")
    result = cli.run(*args)
    assert result.rc == 2, result
    line = one_line_error(result)
    assert len(line) < 300, line
    assert "internal error" not in line


def test_not_found_exit_3(cli, server):
    cli.set_context("demo", server.url, token=server.tokens["viewer"])
    result = cli.run("status", "no-such-pipeline")
    assert result.rc == 3, result
    assert "no-such-pipeline" in one_line_error(result)
    result = cli.run("--context", "nope", "status")
    assert result.rc == 3 and "context 'nope' not found" in one_line_error(result)


# -- permission (5) -------------------------------------------------------------------
def test_unknown_token_exit_5_and_never_printed(cli, server):
    bogus = "bogus-token-" + os.urandom(6).hex()
    cli.set_context("demo", server.url, token=bogus)
    result = cli.run("-v", "status")
    assert result.rc == 5, result
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "config view" in last
    assert bogus not in result.output


def test_viewer_may_not_pause_exit_5_and_audited(cli, server):
    cli.set_context("demo", server.url, token=server.tokens["viewer"])
    result = cli.run("pause", "validate", "-p", "orders")
    assert result.rc == 5, result
    line = one_line_error(result)
    assert "role" in line or "permission" in line.lower()
    entries = cli.audit_lines()
    assert entries and entries[-1]["verb"] == "pause"
    assert entries[-1]["result"].startswith("error: PERMISSION_DENIED")
    assert server.tokens["viewer"] not in cli.audit_path.read_text()


# -- unsupported (7) ------------------------------------------------------------------
def test_engine_query_is_unsupported_by_the_http_driver_exit_7(cli, server):
    cli.set_context("demo", server.url, token=server.tokens["viewer"])
    result = cli.run("saga", "list", "-p", "orders", "--query", "WorkflowType='order'")
    assert result.rc == 7, result
    assert "not supported by the http driver" in one_line_error(result)


# -- unavailable (6) --------------------------------------------------------------------
def test_plane_down_exit_6_fast_and_names_url_and_context(cli):
    port = free_port()
    cli.set_context("down", f"http://127.0.0.1:{port}", token="unused-token-abc")
    result = cli.run("status")
    assert result.rc == 6, result
    line = one_line_error(result)
    assert f"cannot reach control plane at http://127.0.0.1:{port} (context down): connection refused" in line
    assert result.seconds < 10


def test_stopped_plane_exit_6(cli, tmp_path):
    srv = start_server(tmp_path / "short-lived")
    cli.set_context("demo", srv.url, token=srv.tokens["viewer"])
    assert cli.run("status").rc == 0
    srv.stop()
    result = cli.run("status", "-o", "json")
    assert result.rc == 6, result
    assert result.stdout == ""


def test_silent_plane_hits_the_deadline_exit_6(cli):
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        cli.set_context("silent", f"http://127.0.0.1:{port}", token="unused-token-abc")
        result = cli.run("--timeout", "1.5", "status")
    assert result.rc == 6, result
    assert "did not complete within the 1.5s deadline" in one_line_error(result)
    assert result.seconds < 8


class _Html(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"<html>please log in</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_not_a_control_plane_is_internal_exit_1(cli):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        cli.set_context("web", f"http://127.0.0.1:{httpd.server_address[1]}")
        result = cli.run("status")
    finally:
        httpd.shutdown()
    assert result.rc == 1, result
    assert "not JSON" in one_line_error(result)


# -- TLS ------------------------------------------------------------------------------------
def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "plane.pem", tmp / "plane.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


class _TlsFront:
    """An HTTPS front for the real plane: TLS terminated here, requests relayed upstream."""

    def __init__(self, upstream: str, cert: Path, key: Path) -> None:
        front = self

        class Relay(http.server.BaseHTTPRequestHandler):
            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=10)
                front.requests += 1
                self.send_response(answer.status_code)
                for k, v in answer.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _relay  # noqa: N815

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls_is_verified_by_default(cli, server, tmp_path):
    cert, key = _self_signed(tmp_path)
    front = _TlsFront(server.url, cert, key)
    try:
        token = server.tokens["viewer"]
        cli.set_context("tls", front.url, token=token)
        refused = cli.run("status")
        assert refused.rc == 6, refused
        line = one_line_error(refused)
        assert "TLS handshake failed" in line and "certificate" in line and "--ca-file" in line
        assert front.requests == 0, "nothing was sent over an unverified connection"

        cli.set_context("tls-ca", front.url, token=token, extra_args=("--ca-file", str(cert)))
        trusted = cli.run("status", "-o", "json")
        assert trusted.rc == 0, trusted
        assert trusted.json()["items"][0]["name"] == "orders"
        assert "warning" not in trusted.stderr

        cli.set_context("tls-insecure", front.url, token=token, extra_args=("--insecure-skip-tls-verify",))
        insecure = cli.run("status", "-o", "json")
        assert insecure.rc == 0, insecure
        assert "TLS certificate verification is OFF" in insecure.stderr
        assert token not in insecure.output
    finally:
        front.close()


# -- redaction through every credential source ---------------------------------------------
def test_token_exec_token_never_printed_in_traces_errors_or_config_view(cli, server, tmp_path):
    token = server.tokens["viewer"]
    script = tmp_path / "get-token.py"
    script.write_text(f"print({token!r})\n")
    cli.set_context("exec", server.url, extra_args=("--token-exec", f"{sys.executable} {script}"))
    traced = cli.run("-v", "status")
    assert traced.rc == 0, traced
    assert "Bearer [REDACTED]" in traced.stderr
    view = cli.run("config", "view")
    failed = cli.run("-v", "status", "no-such-pipeline")
    assert failed.rc == 3
    for result in (traced, view, failed):
        assert token not in result.output


def test_token_file_token_never_printed(cli, server, tmp_path):
    token = server.tokens["viewer"]
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    os.chmod(token_file, 0o600)
    cli.set_context("file", server.url, extra_args=("--token-file", str(token_file)))
    for args in (("-v", "status", "-o", "json"), ("config", "view", "-o", "yaml"), ("-v", "version")):
        result = cli.run(*args)
        assert result.rc == 0, result
        assert token not in result.output


# -- the audit log ------------------------------------------------------------------------
def test_a_mutation_appends_one_audit_line_with_the_planes_request_id(cli, server):
    cli.set_context("demo", server.url, token=server.tokens["operator"])
    result = cli.run("-v", "pause", "notify", "-p", "orders")
    try:
        assert result.rc == 0, result
    finally:
        httpx.post(f"{server.url}/v1/pipelines/orders/stages/notify/resume", json={},
                   headers=server.headers("operator"), timeout=10)
    entries = cli.audit_lines()
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry["verb"] == "pause" and entry["context"] == "demo" and "notify" in entry["target"]
    assert entry["user"] and entry["time"].endswith("Z")
    assert entry["request_id"] and f"request-id={entry['request_id']}" in result.stderr
    assert server.tokens["operator"] not in cli.audit_path.read_text()
    assert oct(cli.audit_path.stat().st_mode & 0o777) == "0o600"
    assert cli.run("status").rc == 0
    assert len(cli.audit_lines()) == 1, "reads are not audited"


# -- startup stays light -------------------------------------------------------------------
HEAVY = ("httpx", "yaml", "rich", "pipelinectl.server", "fastapi", "uvicorn")


@pytest.mark.parametrize(
    "argv, banned",
    [
        (["--help"], HEAVY + ("typer",)),
        (["--version"], HEAVY + ("typer",)),
        (["status", "--help"], ("httpx", "yaml", "pipelinectl.server", "fastapi", "uvicorn")),
        (["config", "--help"], ("httpx", "yaml", "pipelinectl.server", "fastapi", "uvicorn")),
    ],
)
def test_help_and_version_do_not_import_heavy_modules(argv, banned, tmp_path):
    code = (
        "import sys, io, contextlib\n"
        "from pipelinectl.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main({argv!r})\n"
        f"loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in {banned!r}))\n"
        "print(rc, ','.join(loaded))\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    rc, _, loaded = done.stdout.strip().partition(" ")
    assert rc == "0"
    assert loaded == "", f"{argv} imported {loaded}"


def test_version_fast_path_time(cli):
    started = time.perf_counter()
    result = cli.run("--version")
    assert result.rc == 0 and result.stdout.startswith("pipelinectl ")
    print(f"--version wall time: {(time.perf_counter() - started) * 1000:.0f} ms")





def test_read_verbs_do_not_import_httpx(cli, server):
    """The http driver's requests go through http.client: httpx (~70 ms of imports) stays unloaded."""
    cli.set_context("demo", server.url, token=server.tokens["viewer"])
    code = (
        "import sys, io, contextlib\n"
        "from pipelinectl.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    rc = main(['status', '-o', 'json'])\n"
        "print(rc, 'PipelineList' in out.getvalue(), sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli.env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 True []", done.stdout + done.stderr


# -- retries, seen through -v ----------------------------------------------------------------
def test_transient_503_is_retried_after_retry_after_and_traced(cli, server):
    from urllib.parse import urlsplit

    from tests.support.faultproxy import Fault, FaultProxy

    with FaultProxy(urlsplit(server.url).port) as proxy:
        proxy.add(Fault("status", status=503, retry_after=1))
        cli.set_context("flaky", proxy.url, token=server.tokens["viewer"])
        result = cli.run("-v", "status", "-o", "json")
        assert result.rc == 0, result
        assert result.json()["kind"] == "PipelineList"
        assert "< 503" in result.stderr and "! retrying in 1.00s (attempt 2/" in result.stderr
        assert result.seconds >= 1.0
        assert server.tokens["viewer"] not in result.output

        proxy.add(Fault("status", status=503, times=None))
        failed = cli.run("--timeout", "2", "status")
    assert failed.rc == 6, failed
    assert "gave up after" in one_line_error(failed)


def test_version_names_client_context_and_server(cli, server):
    cli.set_context("demo", server.url, token=server.tokens["viewer"])
    result = cli.run("version", "-o", "json")
    assert result.rc == 0, result
    data = result.json()
    assert data["kind"] == "Version" and data["context"] == "demo" and data["server"]
    validate_output(data)
