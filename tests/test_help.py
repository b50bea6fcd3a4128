"""`--help` on every command and subcommand, in a fresh process each (the renamed-module and
lazy-import bugs show up only there), ends with one or two real examples; the fast paths
(`--help`, `--version`, completion) import no CLI framework, client or server."""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pipelinectl.cli.commands import COMMANDS
from pipelinectl.cli.examples import split_examples

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "pipelinectl")
GLOBAL_VALUE_OPTIONS = {"--context", "--config", "-o", "--output", "--timeout"}
GLOBAL_FLAGS = {"--no-color", "-v", "--verbose", "-h", "--help"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
    env.update(COLUMNS="100", NO_COLOR="1", PIPELINECTL_LOAD_PLUGINS="", TERM="dumb")
    return env


def _command(name: str) -> Any:
    import typer

    from pipelinectl.cli.app import build_root

    return typer.main.get_command(build_root(name)).commands[name]


def _walk(cmd: Any, path: list[str]):
    yield path, cmd
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from _walk(sub, [*path, name])


def _help(path: list[str]) -> subprocess.CompletedProcess[str]:
    return _help_of(tuple(path))


@functools.cache
def _help_of(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """One fresh process per command path; both tests below read the same run."""
    return subprocess.run([EXE, *path, "--help"], capture_output=True, text=True, env=_env(), timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_of_every_command_and_subcommand(name: str) -> None:
    top = _help([name])  # first, in a fresh process: does the lazy import work at all?
    assert (top.returncode, top.stderr) == (0, ""), top
    assert f"pipelinectl {name}" in top.stdout
    paths = [path for path, _ in _walk(_command(name), [name])]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(_help, paths[1:]))
    for path, done in zip(paths[1:], results, strict=True):
        assert (done.returncode, done.stderr) == (0, ""), (path, done)
        assert f"pipelinectl {' '.join(path)}" in done.stdout, path


def _shell_problem(example: str) -> str | None:
    """An example is pasted into a shell as is: an unquoted `<` or `>=` there is a redirection."""
    lexer = shlex.shlex(example, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    for index, token in enumerate(tokens):
        if token.startswith("<") and token != "<(":
            return f"unquoted '{token}' redirects input; quote the argument"
        if token in (">", ">>") and index + 1 < len(tokens) and tokens[index + 1].startswith("="):
            return f"unquoted '{token}{tokens[index + 1]}' redirects output; quote the argument"
    return None


def _check_example(example: str, where: str) -> None:
    """The example names real commands and options, as the parser would resolve them."""
    problem = _shell_problem(example)
    assert problem is None, f"{where}: {problem}: {example}"
    words = shlex.split(example)
    while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value pipelinectl ...
        words.pop(0)
    if words[:1] == ["source"]:  # source <(pipelinectl completion bash)
        words = shlex.split(example.split("<(", 1)[1].rstrip(")"))
    assert words[:1] == ["pipelinectl"], f"{where}: example does not run pipelinectl: {example}"
    for stop in ("|", ">", ">>", "&&", ";"):
        if stop in words:
            words = words[: words.index(stop)]
    words = words[1:]
    cmd: Any = None
    command_path: list[str] = []
    pending_value = False
    for word in words:
        if pending_value:
            pending_value = False
            continue
        if word.startswith("-") and len(word) > 1:
            name = word.split("=", 1)[0]
            if not name.startswith("--") and len(name) > 2:
                name = name[:2]  # -ojson
            if name in GLOBAL_VALUE_OPTIONS:
                pending_value = "=" not in word and len(word) == len(name)
                continue
            if name in GLOBAL_FLAGS:
                continue
            assert cmd is not None, f"{where}: option {word} before the command: {example}"
            params = [p for p in cmd.params if p.param_type_name == "option" and name in (*p.opts, *p.secondary_opts)]
            assert params, f"{where}: '{' '.join(command_path)}' has no option {name}: {example}"
            flag = getattr(params[0], "is_flag", False) or getattr(params[0], "count", False)
            pending_value = not flag and "=" not in word and len(word) == len(name)
            continue
        if cmd is None:
            assert word in COMMANDS, f"{where}: unknown command {word}: {example}"
            cmd = _command(word)
            command_path = [word]
            continue
        subs = getattr(cmd, "commands", None) or {}
        if subs and word in subs and len(command_path) < 3:
            cmd = subs[word]
            command_path.append(word)
    assert cmd is not None, f"{where}: example runs no command: {example}"


@pytest.mark.parametrize("name", [n for n, s in COMMANDS.items() if s.alias_of is None])
def test_every_command_ends_its_help_with_one_or_two_real_examples(name: str) -> None:
    problems = []
    for path, cmd in _walk(_command(name), [name]):
        if cmd.hidden:
            continue
        where = "pipelinectl " + " ".join(path)
        help_text = "\n".join(filter(None, [cmd.help, cmd.epilog]))
        _, examples = split_examples(help_text)
        if not 1 <= len(examples) <= 2:
            problems.append(f"{where}: {len(examples)} examples (want one or two)")
            continue
        for example in examples:
            try:
                _check_example(example, where)
            except AssertionError as exc:
                problems.append(str(exc).split("\n")[0])
        shown = " ".join(_help(path).stdout.split())  # a long example may wrap at the terminal's width
        wanted = " ".join(" ".join(["Examples:", *examples]).split())
        if not shown.endswith(wanted):
            problems.append(f"{where}: --help does not end with its examples (ends with ...{shown[-120:]!r})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"], [], ["--version"], ["-V"], ["-o", "json", "--help"]])
def test_fast_paths_import_no_framework_client_or_server(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from pipelinectl.__main__ import main\n"
        f"rc = main({argv!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich', 'httpx', 'yaml')\n"
        "               or m.startswith(('pipelinectl.server', 'pipelinectl.ui'))\n"
        "               or m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette', 'jinja2'))\n"
        "sys.stderr.write(f'{rc} {heavy}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT,
                          timeout=60)
    assert done.stderr == "0 []", done.stderr
    assert done.stdout.strip(), "something was printed"


def test_top_level_help_names_every_command() -> None:
    done = subprocess.run([EXE, "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in done.stdout, name


def test_top_level_examples_are_real() -> None:
    from pipelinectl.cli.help import EXAMPLES

    for example in EXAMPLES:
        _check_example(example.split("  #")[0].strip(), "pipelinectl --help")
