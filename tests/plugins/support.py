"""Helpers for plugin tests: distributions as an installer leaves them, and the docs' example plugin."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

EXAMPLE = Path(__file__).parent / "example" / "pipelinectl-hello"


def write_distribution(site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]],
                       summary: str = "") -> Path:
    """A distribution's metadata as an installer leaves it: METADATA and entry_points.txt."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
        lines.append("")
    (dist_info / "entry_points.txt").write_text("\n".join(lines))
    return dist_info


def install_example(site: Path) -> str:
    """Install docs' example plugin (tests/plugins/example/pipelinectl-hello) into `site`; returns its name."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copytree(EXAMPLE / "pipelinectl_hello", site / "pipelinectl_hello", dirs_exist_ok=True)
    write_distribution(site, project["name"], project["version"], project["entry-points"],
                       project.get("description", ""))
    return project["name"]
