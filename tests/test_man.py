"""Generated files stay true: man pages and completions regenerate identically, render without
warnings, and show the exit-code table and the same examples as `--help`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "generate_docs.py"
MAN = ROOT / "man"
GROFF = shutil.which("groff")
needs_groff = pytest.mark.skipif(
    GROFF is None, reason="groff is not installed (Debian: apt-get install groff-base); man pages not rendered")


def _generate(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def test_checked_in_files_equal_a_fresh_generation(tmp_path: Path) -> None:
    done = _generate(tmp_path)
    assert done.returncode == 0, done.stderr
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert Path("man/pipelinectl.1") in generated and Path("completions/pipelinectl.bash") in generated
    stale = [str(p) for p in generated if not (ROOT / p).exists() or (ROOT / p).read_text() != (tmp_path / p).read_text()]
    for folder in ("completions", "man"):
        stale += [f"{p.relative_to(ROOT)} (not generated any more)" for p in sorted((ROOT / folder).iterdir())
                  if p.relative_to(ROOT) not in generated]
    assert not stale, f"stale generated files, run 'python scripts/generate_docs.py': {stale}"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert _generate(first).returncode == 0 and _generate(second).returncode == 0
    for path in first.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path


def test_man_pages_are_dated_with_the_release_not_today() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import generate_docs
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from pipelinectl import __version__

    for page in MAN.glob("*.1"):
        th = next(line for line in page.read_text().splitlines() if line.startswith(".TH "))
        assert f'"{generate_docs.RELEASE_DATE}" "pipelinectl {__version__}"' in th, page


def test_completion_command_prints_the_checked_in_scripts() -> None:
    from pipelinectl.cli.completion import FILENAMES

    exe = Path(sys.executable).parent / "pipelinectl"
    for shell, filename in FILENAMES.items():
        done = subprocess.run([str(exe), "completion", shell], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == (ROOT / "completions" / filename).read_text(), shell
    wrong = subprocess.run([str(exe), "completion", "tcsh"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and wrong.stdout == "" and "bash, zsh, fish" in wrong.stderr


def test_one_page_per_command() -> None:
    from pipelinectl.cli.commands import COMMANDS

    expected = {"pipelinectl.1"} | {f"pipelinectl-{n}.1" for n, s in COMMANDS.items() if s.alias_of is None}
    assert {p.name for p in MAN.glob("*.1")} == expected


@needs_groff
@pytest.mark.parametrize("device", ["ps", "utf8"])
def test_every_page_renders_without_warnings(device: str) -> None:
    pages = sorted(MAN.glob("*.1"))
    assert pages
    for page in pages:
        done = subprocess.run([GROFF, "-man", "-ww", "-z", f"-T{device}", str(page)], capture_output=True, text=True,
                              timeout=60)
        assert (done.returncode, done.stderr) == (0, ""), page


def render(page: Path) -> str:
    done = subprocess.run([GROFF, "-man", "-Tascii", "-P-cbou", "-rLL=200n", str(page)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LC_ALL": "C"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_groff
def test_main_page_has_the_sections_and_the_exit_code_table() -> None:
    from pipelinectl.errors import EXIT_CODE_MEANINGS

    text = render(MAN / "pipelinectl.1")
    headings = [line for line in text.splitlines() if re.fullmatch(r"[A-Z][A-Z ]+", line)]
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "GLOBAL OPTIONS", "CONFIGURATION", "ENVIRONMENT",
                    "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        assert section in headings, section
    exit_status = text.split("\nEXIT STATUS\n")[1].split("\nEXAMPLES\n")[0]
    rows = re.findall(r"^ {7}(\d+) +(.+)$", exit_status, flags=re.M)
    assert [(int(code), meaning) for code, meaning in rows] == [
        (int(code), f"{meaning} ({code.name}).") for code, meaning in EXIT_CODE_MEANINGS.items()]
    for variable in ("PIPELINECTL_CONTEXT", "PIPELINECTL_CONFIG", "NO_COLOR", "XDG_CONFIG_HOME"):
        assert variable in text.split("\nENVIRONMENT\n")[1].split("\nFILES\n")[0]
    assert "config.yaml" in text.split("\nFILES\n")[1] and "audit.jsonl" in text.split("\nFILES\n")[1]


@needs_groff
def test_command_pages_show_the_examples_help_shows() -> None:
    import typer

    from pipelinectl.cli.app import build_root
    from pipelinectl.cli.commands import COMMANDS
    from pipelinectl.cli.examples import split_examples

    def walk(cmd, path):
        yield path, cmd
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            if not sub.hidden:
                yield from walk(sub, f"{path} {name}")

    for name, spec in COMMANDS.items():
        if spec.alias_of:
            continue
        page = MAN / f"pipelinectl-{name}.1"
        text = render(page)
        lines = [line.strip() for line in text.splitlines()]
        root = typer.main.get_command(build_root(name)).commands[name]
        for path, cmd in walk(root, f"pipelinectl {name}"):
            _, examples = split_examples(cmd.help)
            assert path in text, (page.name, path)
            for example in examples:
                assert example in lines, (page.name, path, example)


@pytest.mark.skipif(shutil.which("man") is None, reason="man (man-db) is not installed")
@pytest.mark.parametrize("width", ["80", "60"])
def test_man_reads_every_page_without_warnings(width: str) -> None:
    """What an operator runs: `man -l`, all groff warnings on, at a normal and a narrow terminal."""
    for page in sorted(MAN.glob("*.1")):
        done = subprocess.run(["man", "--warnings=w", "-l", str(page)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "MANWIDTH": width, "MANPAGER": "cat", "PAGER": "cat"})
        assert (done.returncode, done.stderr) == (0, ""), page
        assert "pipelinectl" in done.stdout


@pytest.mark.skipif(shutil.which("man") is None, reason="man (man-db) is not installed")
def test_man_finds_the_installed_pages_with_the_install_on_path() -> None:
    """`man pipelinectl` as --help points to it: the pages are under <prefix>/share/man/man1, where man-db
    looks for a bin/ on PATH (no MANPATH needed). `./run setup` links them there in a checkout."""
    bin_dir = Path(sys.executable).parent  # the venv's bin, not the interpreter it links to
    env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", MANPAGER="cat", PAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8")
    for page in sorted(MAN.glob("*.1")):
        name = page.stem
        where = subprocess.run(["man", "-w", name], capture_output=True, text=True, timeout=60, env=env)
        assert where.returncode == 0, (name, where.stderr)
        found = Path(where.stdout.strip())  # man prints a linked page's target
        installed = Path(sys.prefix) / "share" / "man" / "man1" / page.name
        assert found.resolve() == installed.resolve(), (found, installed)
        assert installed.read_text() == page.read_text(), f"{installed} is not the generated page"
    shown = subprocess.run(["man", "pipelinectl"], capture_output=True, text=True, timeout=60, env=env)
    assert shown.returncode == 0 and "EXIT STATUS" in shown.stdout, shown.stderr


def test_a_wheel_installs_every_page_under_share_man(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "pipelinectl", "man"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    import zipfile

    (wheel,) = tmp_path.glob("pipelinectl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    pages = {n.rsplit("/", 1)[1] for n in names if "/data/share/man/man1/" in n}
    assert pages == {p.name for p in MAN.glob("*.1")}
