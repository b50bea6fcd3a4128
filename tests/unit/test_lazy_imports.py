"""The lazy-import rule as a lint (ruff's TID253 in spirit): no heavy module at module level on CLI paths.

httpx, yaml, rich and the server stack cost tens to hundreds of milliseconds; a
command that does not need them must not pay for them, and `--help`/completion
never. They may be imported inside the function that uses them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "pipelinectl"
BANNED = ("httpx", "yaml", "rich", "fastapi", "uvicorn", "pipelinectl.server", "pipelinectl.drivers")
# Modules on the CLI's paths. drivers/ (imported only when a context uses them) and server/ are exempt.
CLI_MODULES = sorted(
    [p for p in (ROOT / "cli").glob("*.py")]
    + [ROOT / name for name in ("__init__.py", "__main__.py", "config.py", "paths.py", "output.py", "audit.py",
                                "redact.py", "timeparse.py", "errors.py", "model.py", "plane.py", "plugins.py",
                                "watch.py", "complete.py") if (ROOT / name).exists()]
)


def module_level_imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are fine
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                package = path.relative_to(root.parent).with_suffix("").parts[:-node.level]
                name = ".".join([*package, node.module] if node.module else package)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


@pytest.mark.parametrize("path", CLI_MODULES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_no_heavy_module_level_imports(path):
    bad = [f"{path.name}:{line} imports {name}" for line, name in module_level_imports(path)
           if any(name == b or name.startswith(b + ".") for b in BANNED)]
    assert not bad, "import these inside the function that needs them: " + "; ".join(bad)



def test_the_check_sees_module_level_imports_only(tmp_path):
    pkg = tmp_path / "pipelinectl" / "cli"
    pkg.mkdir(parents=True)
    sample = pkg / "sample.py"
    sample.write_text("import httpx\nfrom ..server import app\nfrom typing import TYPE_CHECKING\n"
                      "def f():\n    import yaml\n")
    found = [name for _, name in module_level_imports(sample, root=tmp_path / "pipelinectl")]
    assert found == ["httpx", "pipelinectl.server", "typing"]
