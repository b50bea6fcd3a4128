"""Shell completion through the installed executable: `pipelinectl __complete SHELL ...`.

Static candidates (commands, subcommands, options, fixed values) are checked
against the real command tree; context names against a config written by the
CLI itself; control-plane values against a real reference server, and a plane
that accepts connections but never answers must not hold the shell.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.cli import CliEnv, cli_fixture  # noqa: F401  (the `cli` fixture)

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[1]


def candidates(cli: CliEnv, *words: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """(directive, values) for the last word, as zsh and fish ask (descriptions dropped)."""
    result = cli.run("__complete", "zsh", "--", *words, env=env, timeout=30)
    assert result.rc == 0, result
    assert result.stderr == "", result
    lines = result.stdout.split("\n")
    assert lines[-1] == "", "output ends with a newline"
    return lines[0], [line.split("\t")[0] for line in lines[1:-1]]


def values(cli: CliEnv, *words: str, env: dict[str, str] | None = None) -> list[str]:
    directive, found = candidates(cli, *words, env=env)
    assert directive == "values"
    return found


def tree():
    """The real command tree, one top-level command at a time (what --help and the parser see)."""
    import typer

    from pipelinectl.cli.app import build_root

    def command(name: str):
        return typer.main.get_command(build_root(name)).commands[name]

    return command


# -- static: the generated table agrees with the command tree -----------------------------------------
def test_top_level_offers_every_command_but_not_aliases(cli: CliEnv) -> None:
    from pipelinectl.cli.commands import COMMANDS

    found = values(cli, "")
    assert found == [name for name, spec in COMMANDS.items() if spec.alias_of is None]
    assert values(cli, "d") == [n for n in found if n.startswith("d")]
    assert values(cli, "resi") == ["resize"], "an alias completes once typed"


def test_subcommands_match_the_tree(cli: CliEnv) -> None:
    command = tree()
    for group in ("dlq", "saga", "replay", "config"):
        expected = [n for n, c in command(group).commands.items() if not c.hidden]
        assert values(cli, group, "") == expected, group
    assert values(cli, "saga", "force-") == ["force-fail", "force-complete"]


def test_options_of_a_subcommand_and_the_global_ones(cli: CliEnv) -> None:
    command = tree()
    dlq_list = command("dlq").commands["list"]
    own = {opt for p in dlq_list.params if p.param_type_name == "option" for opt in p.opts}
    found = values(cli, "dlq", "list", "--")
    assert {o for o in own if o.startswith("--")} <= set(found)
    assert {"--output", "--context", "--config", "--timeout", "--help"} <= set(found)
    assert "--yes" not in found, "redrive's options are not offered on list"
    assert values(cli, "dlq", "redrive", "--y") == ["--yes"]
    assert values(cli, "--ver") == ["--verbose", "--version"]


def test_option_values_output_formats_and_fixed_choices(cli: CliEnv) -> None:
    from pipelinectl.cli.options import OUTPUT_FORMATS
    from pipelinectl.model import ERROR_KINDS, SAGA_STATUSES

    assert values(cli, "status", "-o", "") == list(OUTPUT_FORMATS)
    assert values(cli, "-o", "j") == ["json", "jsonl"], "a global option before the command"
    assert values(cli, "dlq", "list", "--output=js") == ["--output=json", "--output=jsonl"]
    assert values(cli, "status", "-oy") == ["-oyaml"]
    assert values(cli, "dlq", "purge", "--error-kind", "") == list(ERROR_KINDS)
    assert values(cli, "saga", "list", "--status", "") == list(SAGA_STATUSES)
    assert values(cli, "completion", "") == ["bash", "zsh", "fish"]


def test_after_an_option_value_the_command_continues(cli: CliEnv) -> None:
    assert values(cli, "-o", "json", "dl") == ["dlq"]
    assert values(cli, "--context", "prod", "dlq", "re") == ["redrive"]
    assert values(cli, "dlq", "list", "--stage", "x", "--li") == ["--limit"]


def test_free_text_and_files(cli: CliEnv) -> None:
    assert candidates(cli, "dlq", "list", "--since", "") == ("values", [])
    assert candidates(cli, "--config", "")[0] == "files"
    assert candidates(cli, "config", "set-context", "x", "--ca-file", "")[0] == "files"


def test_descriptions_ride_along_for_zsh_and_fish(cli: CliEnv) -> None:
    from pipelinectl.cli.commands import COMMANDS

    result = cli.run("__complete", "fish", "--", "sta")
    assert result.stdout.split("\n")[1] == f"status\t{COMMANDS['status'].summary}"


def test_completion_imports_no_cli_framework_and_no_client(cli: CliEnv) -> None:
    code = (
        "import sys\n"
        "from pipelinectl.__main__ import main\n"
        "for words in (['dlq', ''], ['dlq', 'list', '--'], ['-o', ''], ['completion', '']):\n"
        "    main(['__complete', 'zsh', '--', *words])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich', 'httpx', 'yaml'))\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli.env(), cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "[]"


def test_garbage_in_completes_nothing_and_never_fails(cli: CliEnv) -> None:
    for words in (["--timeout"], ["dlq", "list", "--limit"], ["nosuchcommand", ""], ["--", ""], ["dlq", "-"]):
        result = cli.run("__complete", "zsh", "--", *words)
        assert result.rc == 0 and result.stderr == "", result
    assert cli.run("__complete").rc == 0
    unbalanced = cli.run("__complete", "bash", "pipelinectl saga force-fail x --reason \"card ")
    assert unbalanced.rc == 0 and unbalanced.stdout == "values\n"


# -- local values: contexts and drivers ---------------------------------------------------------------
def test_context_names_come_from_the_config_and_follow_its_changes(cli: CliEnv) -> None:
    assert values(cli, "config", "use-context", "") == [], "no config yet: nothing, no error"
    cli.set_context("prod", "https://plane.prod:8765")
    cli.set_context("staging", "https://plane.staging:8765", use=False)
    assert values(cli, "config", "use-context", "") == ["prod", "staging"]
    assert values(cli, "--context", "st") == ["staging"]
    assert values(cli, "status", "--context=p") == ["--context=prod"]
    time.sleep(0.01)  # a new mtime for the change below
    cli.set_context("dev", "http://127.0.0.1:9", use=False)
    assert values(cli, "config", "delete-context", "") == ["dev", "prod", "staging"]
    other = cli.root / "other.yaml"
    other.write_text("contexts:\n  elsewhere: {url: 'http://127.0.0.1:9'}\n")
    assert values(cli, "--config", str(other), "--context", "") == ["elsewhere"]
    assert values(cli, "--context", "", env={"PIPELINECTL_CONFIG": str(other)}) == ["elsewhere"]


def test_a_malformed_config_completes_nothing_quietly(cli: CliEnv) -> None:
    cli.config_path.parent.mkdir(parents=True, exist_ok=True)
    cli.config_path.write_text("contexts: [not, a, mapping\n")
    assert values(cli, "--context", "") == []


def test_driver_names(cli: CliEnv) -> None:
    found = values(cli, "config", "set-context", "x", "--driver", "", env={"PIPELINECTL_LOAD_PLUGINS": ""})
    assert found == ["http"]


# -- control-plane values ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory):
    from tests.support.server import start_server

    server = start_server(tmp_path_factory.mktemp("plane"), env={"PIPELINECTL_DEMO_RATE": "0"})
    try:
        yield server
    finally:
        server.stop()


def _use(cli: CliEnv, plane, role: str = "viewer") -> None:
    cli.set_context("demo", plane.url, token=plane.tokens[role])
    # These tests check what is offered, not the deadline: a loaded test machine must not cut answers short.
    cli.extra_env["PIPELINECTL_COMPLETE_TIMEOUT"] = "15"


def test_values_from_the_control_plane_match_what_the_cli_lists(cli: CliEnv, plane) -> None:
    _use(cli, plane)
    status = cli.run("status", "-o", "json").json()
    pipelines = [p["name"] for p in status["items"]]
    stages = [s["name"] for p in status["items"] for s in p["stages"]]
    assert pipelines and stages
    assert values(cli, "status", "") == pipelines
    assert values(cli, "dlq", "list", "-p", "") == pipelines
    assert values(cli, "pause", "") == stages
    assert values(cli, "dlq", "list", "--stage", "") == stages
    assert values(cli, "pause", stages[0][:2]) == [s for s in stages if s.startswith(stages[0][:2])]
    # The demo keeps producing dead letters and sagas, so the completed IDs are checked to lie between a
    # listing taken just before and one taken just after (the completion cache is filled in between).
    def listed(*args: str) -> set[str]:
        return {i["id"] for i in cli.run(*args, "-o", "json").json()["items"]}

    dlq_before = listed("dlq", "list")
    assert dlq_before, "the demo makes dead letters"
    completed = values(cli, "dlq", "inspect", "")
    assert dlq_before <= set(completed) <= listed("dlq", "list")
    first = sorted(dlq_before)[0]
    assert set(values(cli, "dlq", "redrive", first, "")) == set(completed), "redrive takes many IDs (cached)"
    saga_before = listed("saga", "list")
    assert saga_before, "the demo starts sagas"
    completed = values(cli, "saga", "inspect", "")
    assert saga_before <= set(completed) <= listed("saga", "list")
    described = cli.run("__complete", "fish", "--", "pause", "").stdout.split("\n")[1]
    assert "\t" in described and described.split("\t")[1].startswith(("running", "paused", "draining"))


def test_replay_job_ids(cli: CliEnv, plane) -> None:
    _use(cli, plane, role="operator")
    started = cli.run("replay", "--from-offset", "0", "--to-offset", "3", "--yes", "-o", "json")
    assert started.rc == 0, started
    listed = [j["id"] for j in cli.run("replay", "list", "-o", "json").json()["items"]]
    assert started.json()["id"] in listed
    assert values(cli, "replay", "show", "", env={"PIPELINECTL_COMPLETE_TTL": "0"}) == listed
    assert values(cli, "replay", "cancel", started.json()["id"][:4]) == [i for i in listed if i.startswith(started.json()["id"][:4])]


def test_dlq_ids_follow_the_stage_filter(cli: CliEnv, plane) -> None:
    _use(cli, plane)
    items = cli.run("dlq", "list", "-o", "json").json()["items"]
    stage = items[0]["stage"]
    expected = [i["id"] for i in items if i["stage"] == stage][:200]
    assert values(cli, "dlq", "purge", "--stage", stage, "") == expected


def test_answers_are_cached_briefly_then_stale_values_beat_silence(cli: CliEnv, plane) -> None:
    _use(cli, plane)
    stages = values(cli, "pause", "")
    cache = cli.cache_home / "pipelinectl" / "completion.json"
    assert cache.exists() and "token" not in cache.read_text().lower()
    assert cache.stat().st_mode & 0o077 == 0, "the cache is readable by its owner only"
    plane_url = plane.url
    # Point the context at a port where nothing listens: within the TTL the cached answer stands.
    dead = _closed_port_url()
    text = cli.config_path.read_text()
    stamp = cli.config_path.stat().st_mtime_ns
    cli.config_path.write_text(text.replace(plane_url, dead))
    os.utime(cli.config_path, ns=(stamp, stamp))  # same stamp: the same cache entry
    assert values(cli, "pause", "") == stages
    # Past the TTL the plane is asked again; it does not answer, so the last answer is shown.
    assert values(cli, "pause", "", env={"PIPELINECTL_COMPLETE_TTL": "0", "PIPELINECTL_COMPLETE_TIMEOUT": "0.5"}) == stages


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


class _SilentPlane:
    """Accepts connections and never answers: the worst case for a Tab."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_a_silent_plane_never_holds_the_shell(cli: CliEnv) -> None:
    silent = _SilentPlane()
    try:
        cli.set_context("silent", silent.url)
        env = {"PIPELINECTL_COMPLETE_TIMEOUT": "0.5"}
        started = time.perf_counter()
        assert values(cli, "pause", "", env=env) == []
        first = time.perf_counter() - started
        # The command itself would wait up to --timeout (30 s); completion gives up after 0.5 s
        # plus start-up, and the next Tab within the TTL does not ask again.
        assert first < 5.0, first
        started = time.perf_counter()
        assert values(cli, "dlq", "list", "--stage", "", env=env) == []
        assert values(cli, "pause", "", env=env) == []
        assert silent.held, "completion did try the plane"
        again = time.perf_counter() - started
        assert again < first + 2.0
        held = len(silent.held)
        assert values(cli, "pause", "", env=env) == []
        assert len(silent.held) == held, "within the TTL the failure is remembered, the plane not asked"
    finally:
        silent.close()


def test_unreachable_plane_yields_nothing_and_says_nothing(cli: CliEnv) -> None:
    cli.set_context("gone", _closed_port_url())
    result = cli.run("__complete", "bash", "pipelinectl dlq inspect ", env={"PIPELINECTL_COMPLETE_TIMEOUT": "0.5"})
    assert (result.rc, result.stdout, result.stderr) == (0, "values\n", "")


# -- plugin command groups -----------------------------------------------------------------------------
FAKE_PLUGIN = '''
import enum

import typer

app = typer.Typer(help="Fake commands for completion tests.")


class Mode(str, enum.Enum):
    fast = "fast"
    careful = "careful"


@app.command()
def rebalance(stage: str = typer.Option(None, "--stage", help="The stage."),
              mode: Mode = typer.Option(Mode.fast, "--mode", help="How.")) -> None:
    """Rebalance partitions."""


@app.command()
def offsets() -> None:
    """Show offsets."""
'''


def _install_fake_plugin(site: Path, body: str = FAKE_PLUGIN) -> dict[str, str]:
    from tests.plugins.support import write_distribution

    package = site / "pipelinectl_fakecomp"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "commands.py").write_text(body)
    write_distribution(site, "pipelinectl-fakecomp", "0.1.0",
                       {"pipelinectl.commands": {"fakecomp": "pipelinectl_fakecomp.commands:app"}},
                       "Fake commands for completion tests")
    return {"PYTHONPATH": str(site), "PIPELINECTL_LOAD_PLUGINS": "pipelinectl-fakecomp"}


def test_plugin_command_groups_complete_like_built_in_ones(cli: CliEnv, tmp_path: Path) -> None:
    env = _install_fake_plugin(tmp_path / "site")
    assert values(cli, "fake", env=env) == ["fakecomp"], "offered when no built-in command fits"
    assert "fakecomp" not in values(cli, "", env=env), "the bare listing stays the built-in table"
    assert values(cli, "fakecomp", "", env=env) == ["rebalance", "offsets"]
    assert values(cli, "fakecomp", "rebalance", "--", env=env)[:3] == ["--help", "--mode", "--stage"]
    assert values(cli, "fakecomp", "rebalance", "--mode", "", env=env) == ["fast", "careful"]
    assert values(cli, "-o", "json", "fakecomp", "off", env=env) == ["offsets"]


def test_a_broken_plugin_completes_nothing_and_says_nothing(cli: CliEnv, tmp_path: Path) -> None:
    env = _install_fake_plugin(tmp_path / "site", body="raise RuntimeError('broken on import')\n")
    assert values(cli, "fakecomp", "", env=env) == []
    assert values(cli, "fa", env=env) == []
