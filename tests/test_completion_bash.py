"""Drive the checked-in bash completion for real: bash sources completions/pipelinectl.bash,
sets COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT as readline would, calls the function and
prints COMPREPLY. zsh and fish run their scripts the same way when they are installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import CliEnv, cli_fixture, executable  # noqa: F401  (the `cli` fixture)

ROOT = Path(__file__).resolve().parents[1]
BASH_SCRIPT = ROOT / "completions" / "pipelinectl.bash"
BASH = shutil.which("bash")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(BASH is None, reason="bash is not installed")]


def _env(cli: CliEnv) -> dict[str, str]:
    env = cli.env()
    env["PATH"] = os.pathsep.join([str(Path(executable()).parent), env.get("PATH", "")])
    return env


def bash_complete(cli: CliEnv, words: list[str], *, cwd: Path | None = None) -> list[str]:
    """COMPREPLY after Tab with the cursor at the end of `words` (the last one is being typed).

    COMP_WORDS is split the way bash splits it: `=` and `:` are words of their own.
    """
    line = " ".join(words)
    comp_words: list[str] = []
    for word in words:
        head, eq, tail = word.partition("=")
        if eq and head.startswith("-"):
            comp_words += [head, "="] + ([tail] if tail else [])
        else:
            comp_words.append(word)
    quoted = " ".join(_q(w) for w in comp_words)
    program = f"""
source {_q(str(BASH_SCRIPT))}
COMP_WORDS=({quoted})
COMP_CWORD={len(comp_words) - 1}
COMP_LINE={_q(line)}
COMP_POINT={len(line)}
_pipelinectl pipelinectl {_q(comp_words[-1])} {_q(comp_words[-2] if len(comp_words) > 1 else "")}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run([BASH, "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          env=_env(cli), cwd=cwd or cli.root, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return [line for line in done.stdout.split("\n") if line]


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_the_completion_is_registered_for_pipelinectl(cli: CliEnv) -> None:
    done = subprocess.run([BASH, "--norc", "--noprofile", "-c", f"source {_q(str(BASH_SCRIPT))}; complete -p pipelinectl"],
                          capture_output=True, text=True, env=_env(cli), timeout=30)
    assert done.returncode == 0 and "-F _pipelinectl" in done.stdout and "pipelinectl" in done.stdout


def test_commands(cli: CliEnv) -> None:
    from pipelinectl.cli.commands import COMMANDS

    assert bash_complete(cli, ["pipelinectl", ""]) == [n for n, s in COMMANDS.items() if s.alias_of is None]
    assert bash_complete(cli, ["pipelinectl", "sa"]) == ["saga"]


def test_a_subcommand(cli: CliEnv) -> None:
    assert bash_complete(cli, ["pipelinectl", "dlq", "re"]) == ["redrive"]
    assert bash_complete(cli, ["pipelinectl", "--context", "x", "saga", "force-c"]) == ["force-complete"]


def test_an_option(cli: CliEnv) -> None:
    assert bash_complete(cli, ["pipelinectl", "dlq", "list", "--err"]) == ["--error-kind"]
    assert bash_complete(cli, ["pipelinectl", "pause", "--dr"]) == ["--dry-run"]


def test_output_format_values(cli: CliEnv) -> None:
    from pipelinectl.cli.options import OUTPUT_FORMATS

    assert bash_complete(cli, ["pipelinectl", "status", "-o", ""]) == list(OUTPUT_FORMATS)
    assert bash_complete(cli, ["pipelinectl", "status", "-o", "j"]) == ["json", "jsonl"]
    # `--output=js`: bash splits at "=", readline replaces only "js", so the candidates are bare values.
    assert bash_complete(cli, ["pipelinectl", "status", "--output=js"]) == ["json", "jsonl"]
    assert bash_complete(cli, ["pipelinectl", "status", "--output="]) == list(OUTPUT_FORMATS)


def test_context_names_from_a_temp_config(cli: CliEnv) -> None:
    cli.set_context("prod-eu", "https://plane.eu:8765")
    cli.set_context("prod-us", "https://plane.us:8765", use=False)
    cli.set_context("staging", "https://plane.staging:8765", use=False)
    assert bash_complete(cli, ["pipelinectl", "config", "use-context", ""]) == ["prod-eu", "prod-us", "staging"]
    assert bash_complete(cli, ["pipelinectl", "--context", "prod"]) == ["prod-eu", "prod-us"]
    assert bash_complete(cli, ["pipelinectl", "status", "--context=st"]) == ["staging"]


def test_a_line_starting_with_environment_assignments(cli: CliEnv, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("contexts:\n  elsewhere: {url: 'http://127.0.0.1:9'}\n")
    line = ["PIPELINECTL_CONFIG=" + str(other), "pipelinectl", "--context", ""]
    program = f"""
source {_q(str(BASH_SCRIPT))}
COMP_WORDS=(pipelinectl --context '')
COMP_CWORD=2
COMP_LINE={_q(" ".join(line))}
COMP_POINT=${{#COMP_LINE}}
_pipelinectl pipelinectl '' --context
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run([BASH, "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          env=_env(cli), timeout=60)
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["elsewhere"], "")


def test_files_for_file_options(cli: CliEnv, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "ctx-a.yaml").write_text("")
    (work / "ctx-b.yaml").write_text("")
    (work / "other.txt").write_text("")
    assert bash_complete(cli, ["pipelinectl", "--config", "ctx"], cwd=work) == ["ctx-a.yaml", "ctx-b.yaml"]


def test_completion_script_matches_the_command_output(cli: CliEnv) -> None:
    result = cli.run("completion", "bash")
    assert result.rc == 0 and result.stdout == BASH_SCRIPT.read_text()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_completes(cli: CliEnv) -> None:
    """The zsh function with `words`/`CURRENT` set; _describe and _files stubbed to print what they get."""
    cli.set_context("prod", "https://plane.prod:8765")
    script = ROOT / "completions" / "_pipelinectl"
    program = f"""
compdef() {{ : }}
_describe() {{ local arr=${{@[-1]}}; print -rl -- ${{(P)arr}} }}
_files() {{ print -r -- "FILES" }}
source {_q(str(script))}
words=(pipelinectl dlq re); CURRENT=3; _pipelinectl
words=(pipelinectl --output=j); CURRENT=2; _pipelinectl
words=(pipelinectl --config ''); CURRENT=3; _pipelinectl
words=(pipelinectl config use-context ''); CURRENT=4; _pipelinectl
"""
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, env=_env(cli), timeout=60)
    assert done.returncode == 0, done
    from pipelinectl.cli import _completion_data as data

    redrive = data.TREE["commands"]["dlq"]["commands"]["redrive"]["summary"]
    assert done.stdout.splitlines() == [f"redrive:{redrive}", "--output=json", "--output=jsonl", "FILES", "prod"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_script_completes(cli: CliEnv) -> None:
    from pipelinectl.cli.options import OUTPUT_FORMATS

    cli.set_context("prod", "https://plane.prod:8765")
    script = ROOT / "completions" / "pipelinectl.fish"
    program = (f"source {_q(str(script))}; complete -C 'pipelinectl dlq re'; echo ==; complete -C 'pipelinectl -o '; "
               "echo ==; complete -C 'pipelinectl --context '")
    done = subprocess.run(["fish", "--no-config", "-c", program], capture_output=True, text=True, env=_env(cli),
                          timeout=60)
    assert done.returncode == 0, done
    blocks = [[line.split("\t")[0] for line in block.strip().splitlines()] for block in done.stdout.split("==\n")]
    assert blocks == [["redrive"], list(OUTPUT_FORMATS), ["prod"]]


class _InteractiveShell:
    """An interactive shell on a pseudo-terminal with the completion loaded: the line editor does the inserting."""

    PROMPT = "PCTL-READY$ "

    def __init__(self, argv: list[str], env: dict[str, str], setup: str) -> None:
        import pty

        self.master, slave = pty.openpty()
        env = {**env, "PS1": self.PROMPT, "TERM": "dumb", "INPUTRC": "/dev/null"}
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        # The marker is computed by the shell, so the echo of the typed line cannot match it.
        self.send(f"PS1={_q(self.PROMPT)}; {setup}; echo PCTL-SETUP-$((40 + 2))\n")
        self.wait_for("PCTL-SETUP-42")
        self.read_until_quiet()  # the prompt that follows

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until_quiet(self, quiet: float = 0.6, limit: float = 15.0) -> str:
        import select
        import time

        seen, deadline, last = b"", time.monotonic() + limit, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < quiet:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                seen += chunk
                last = time.monotonic()
        return seen.decode("utf-8", "replace")

    def wait_for(self, text: str, limit: float = 15.0) -> str:
        import select
        import time

        seen, deadline = "", time.monotonic() + limit
        while text not in seen:
            assert time.monotonic() < deadline, f"waited for {text!r}, saw {seen!r}"
            if select.select([self.master], [], [], 0.05)[0]:
                seen += os.read(self.master, 65536).decode("utf-8", "replace")
        return seen

    def tab(self, typed: str) -> str:
        """Type, press Tab, and return the line as readline left it (the prompt line's text)."""
        self.send(typed + "\t")
        echoed = self.read_until_quiet()
        self.send("\x15")  # Ctrl-U: clear the line for the next case
        self.read_until_quiet(0.3)
        return echoed.replace("\x07", "")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        os.close(self.master)


def test_readline_inserts_what_the_script_offers(cli: CliEnv) -> None:
    """Real Tab presses in an interactive bash: a unique candidate is inserted, `--output=` splits right."""
    cli.set_context("prod-eu", "https://plane.eu:8765")
    shell = _InteractiveShell([BASH, "--norc", "--noprofile", "-i"], _env(cli), f"source {_q(str(BASH_SCRIPT))}")
    try:
        assert shell.tab("pipelinectl dlq red").endswith("pipelinectl dlq redrive ")
        assert shell.tab("pipelinectl status --output=ya").endswith("--output=yaml ")
        assert shell.tab("pipelinectl --context pro").endswith("--context prod-eu ")
        assert shell.tab("pipelinectl saga force-c").endswith("force-complete ")
    finally:
        shell.close()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_autoloads_the_script_from_fpath_and_completes(cli: CliEnv, tmp_path: Path) -> None:
    """Installed as docs/completion.md says (a directory on $fpath, then compinit), Tab completes in zsh."""
    functions = tmp_path / "zfunc"
    functions.mkdir()
    shutil.copy(ROOT / "completions" / "_pipelinectl", functions / "_pipelinectl")
    cli.set_context("prod-eu", "https://plane.eu:8765")
    setup = f"fpath=({_q(str(functions))} $fpath); autoload -U compinit && compinit -u -d {_q(str(tmp_path / 'zcd'))}"
    shell = _InteractiveShell(["zsh", "-f", "-i"], _env(cli), setup)
    try:
        assert shell.tab("pipelinectl dlq red").endswith("pipelinectl dlq redrive ")
        assert shell.tab("pipelinectl status --output=ya").endswith("--output=yaml ")
        assert shell.tab("pipelinectl --context pro").endswith("--context prod-eu ")
    finally:
        shell.close()
