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

from pipelinectl.cli.commands import COMMANDS, HELP_WIDTH
from pipelinectl.cli.examples import split_examples

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "pipelinectl")
GLOBAL_VALUE_OPTIONS = {"--context", "--config", "-o", "--output", "--timeout", "--confirm-context"}
GLOBAL_FLAGS = {"--no-color", "-v", "--verbose", "-h", "--help"}


def _env(columns: int = 100) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
    env.update(COLUMNS=str(columns), NO_COLOR="1", PIPELINECTL_LOAD_PLUGINS="", TERM="dumb")
    return env


NARROW = 72  # under HELP_WIDTH: help is rendered from the command tree, not served as generated


def _command(name: str) -> Any:
    import typer

    from pipelinectl.cli.app import build_root

    return typer.main.get_command(build_root(name)).commands[name]


def _walk(cmd: Any, path: list[str]):
    yield path, cmd
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from _walk(sub, [*path, name])


def _help(path: list[str], columns: int = 100) -> subprocess.CompletedProcess[str]:
    return _help_of(tuple(path), columns)


@functools.cache
def _help_of(path: tuple[str, ...], columns: int) -> subprocess.CompletedProcess[str]:
    """One fresh process per command path and width; the tests below read the same runs."""
    return subprocess.run([EXE, *path, "--help"], capture_output=True, text=True, env=_env(columns), timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_of_every_command_and_subcommand(name: str) -> None:
    top = _help([name], NARROW)  # first, in a fresh process: does the lazy import work at all?
    assert (top.returncode, top.stderr) == (0, ""), top
    assert f"pipelinectl {name}" in top.stdout
    paths = [path for path, _ in _walk(_command(name), [name])]
    runs = [(path, columns) for path in paths for columns in (NARROW, 100)]  # rendered, and as generated
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda run: _help(*run), runs))
    for (path, columns), done in zip(runs, results, strict=True):
        assert (done.returncode, done.stderr) == (0, ""), (path, columns, done)
        # one style: plain text, as the top level
        assert done.stdout.startswith(f"Usage: pipelinectl {' '.join(path)} "), (path, done.stdout[:200])
        assert not BOX_DRAWING & set(done.stdout), (path, done.stdout[:400])
        assert _widest(done.stdout) <= min(columns, HELP_WIDTH), (path, columns)


def _widest(help_text: str) -> int:
    """The longest line above the examples (an example stays one line, to paste whole)."""
    return max(len(line) for line in help_text.split("\nExamples:\n")[0].splitlines())


BOX_DRAWING = set("╭╮╰╯│─┃━")


def test_subcommand_help_is_the_plain_layout_with_values_named_and_examples_flush_left() -> None:
    shown = _help(["dlq", "list"]).stdout
    assert "\nOptions:\n  -p, --pipeline PIPELINE " in shown
    assert "\nExamples:\n  pipelinectl dlq list --stage validate" in shown
    assert "\n  pipelinectl dlq list -o jsonl --limit 5000 > dlq.jsonl\n" in shown  # one line each, not re-wrapped
    usage = _help(["config", "set-context"]).stdout.splitlines()[0]
    assert usage == "Usage: pipelinectl config set-context [OPTIONS] NAME"
    assert _help(["dlq", "redrive"]).stdout.splitlines()[0] == "Usage: pipelinectl dlq redrive [OPTIONS] [ID...]"


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


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"], [], ["--version"], ["-V"], ["-o", "json", "--help"],
                                  ["dlq", "list", "--help"], ["saga", "force-fail", "-h"], ["resize", "--help"],
                                  ["-o", "json", "config", "set-context", "--help"]])
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


def test_a_built_in_command_s_help_is_served_as_generated_and_rendered_the_same() -> None:
    from pipelinectl.cli._help_data import HELP

    for path in (["dlq", "list"], ["saga", "force-fail"], ["config", "set-context"], ["resize"]):
        served = _help(path, 100).stdout
        assert served == HELP[" ".join(path)]
        rendered = subprocess.run(  # the tree's own rendering at that width, in-process
            [sys.executable, "-c", "import sys; from pipelinectl.cli.app import run; "
             "from pipelinectl.cli.options import GlobalOptions; sys.exit(run(GlobalOptions(), sys.argv[1:]))",
             *path, "--help"], capture_output=True, text=True, env=_env(HELP_WIDTH), cwd=ROOT, timeout=60)
        assert rendered.stdout == served, path


def test_on_a_narrow_terminal_help_is_rendered_for_its_width() -> None:
    narrow = _help(["dlq", "list"], 60).stdout
    assert _widest(narrow) <= 60
    assert narrow != _help(["dlq", "list"], 100).stdout


def test_rendered_subcommand_help_imports_no_rich_client_or_server() -> None:
    code = (
        "import sys\n"
        "from pipelinectl.__main__ import main\n"
        "rc = main(['saga', 'list', '--help'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'httpx', 'yaml', 'pygments')\n"
        "               or m.startswith('pipelinectl.server') or m == 'typer.rich_utils')\n"
        "sys.stderr.write(f'{rc} {heavy}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(NARROW), cwd=ROOT,
                          timeout=60)
    assert done.stderr == "0 []", done.stderr


def test_top_level_help_names_every_command() -> None:
    done = subprocess.run([EXE, "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in done.stdout, name


def test_top_level_examples_are_real() -> None:
    from pipelinectl.cli.help import EXAMPLES

    for example in EXAMPLES:
        _check_example(example.split("  #")[0].strip(), "pipelinectl --help")


@pytest.mark.parametrize("argv, option", [
    (("replay",), "--from"), (("replay",), "--to"), (("dlq", "list"), "--since"), (("dlq", "purge"), "--until"),
])
def test_time_options_document_the_words_the_parser_accepts(argv, option):
    """`--from yesterday` works (midnight UTC the day before): the help says so, for every time option."""
    from pipelinectl.timeparse import parse_time

    parse_time("yesterday", option=option)  # accepted ...
    command = _command(argv[0])
    for name in argv[1:]:
        command = command.commands[name]
    param = next(p for p in command.params if option in p.opts)
    assert "yesterday" in param.help and "midnight UTC" in param.help, param.help  # ... and documented
