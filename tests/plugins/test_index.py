"""The plugin index: entry points read from metadata once per installation change, then from a cache file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelinectl import plugin_index, plugins
from tests.plugins.support import write_distribution

EXE = str(Path(sys.executable).parent / "pipelinectl")
LONG_AGO = time.time() - 3600


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "dist-a,dist-b")
    return path


def _settle(path: Path) -> None:
    """Date the site directory an hour back, as an installation done earlier would be."""
    os.utime(path, (LONG_AGO, LONG_AGO))


def _no_metadata_reads(monkeypatch) -> None:
    import importlib.metadata

    def refuse(**_: object) -> None:
        raise AssertionError("distribution metadata was read")

    monkeypatch.setattr(importlib.metadata, "entry_points", refuse)


def test_a_settled_installation_is_read_once_then_served_from_the_cache(site, monkeypatch):
    write_distribution(site, "dist-a", "1.0", {"pipelinectl.drivers": {"alpha": "alpha_mod:Plane"}})
    _settle(site)
    plugins.clear_cache()
    assert plugins.driver_entries()["alpha"].target == "alpha_mod:Plane"
    cached = json.loads(Path(plugin_index.cache_file()).read_text())
    assert "alpha" in [r["name"] for r in cached["groups"]["pipelinectl.drivers"]]

    plugins.clear_cache()  # a new process: the in-memory answer is gone, the file is not
    _no_metadata_reads(monkeypatch)
    assert plugins.driver_entries()["alpha"].distribution == "dist-a"


def test_installing_a_distribution_invalidates_the_cache(site):
    write_distribution(site, "dist-a", "1.0", {"pipelinectl.drivers": {"alpha": "alpha_mod:Plane"}})
    _settle(site)
    plugins.clear_cache()
    assert "beta" not in plugins.driver_entries()
    write_distribution(site, "dist-b", "2.0", {"pipelinectl.commands": {"beta": "beta_mod:app"}})  # dir mtime moves
    plugins.clear_cache()
    assert plugins.command_entries()["beta"].version == "2.0"


def test_a_directory_changed_a_moment_ago_is_not_trusted_to_key_the_cache(site):
    write_distribution(site, "dist-a", "1.0", {"pipelinectl.drivers": {"alpha": "alpha_mod:Plane"}})
    plugins.clear_cache()
    assert "alpha" in plugins.driver_entries()
    assert not Path(plugin_index.cache_file()).exists()  # a change within the same mtime tick could hide


def test_a_different_sys_path_is_a_different_installation(site, tmp_path, monkeypatch):
    write_distribution(site, "dist-a", "1.0", {"pipelinectl.drivers": {"alpha": "alpha_mod:Plane"}})
    _settle(site)
    plugins.clear_cache()
    assert "alpha" in plugins.driver_entries()
    other = tmp_path / "other-site"
    write_distribution(other, "dist-b", "1.0", {"pipelinectl.drivers": {"beta": "beta_mod:Plane"}})
    _settle(other)
    monkeypatch.syspath_prepend(str(other))
    plugins.clear_cache()
    assert {"alpha", "beta"} <= set(plugins.driver_entries())


def test_the_filter_applies_to_cached_rows(site, monkeypatch):
    write_distribution(site, "dist-a", "1.0", {"pipelinectl.drivers": {"alpha": "alpha_mod:Plane"}})
    _settle(site)
    plugins.clear_cache()
    assert "alpha" in plugins.driver_entries()
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    plugins.clear_cache()
    assert "alpha" not in plugins.driver_entries()


def test_an_unreadable_cache_file_only_costs_a_scan(site):
    write_distribution(site, "dist-a", "1.0", {"pipelinectl.drivers": {"alpha": "alpha_mod:Plane"}})
    _settle(site)
    Path(plugin_index.cache_file()).parent.mkdir(parents=True, exist_ok=True)
    Path(plugin_index.cache_file()).write_text("{not json")
    plugins.clear_cache()
    assert "alpha" in plugins.driver_entries()


def test_a_read_command_on_the_built_in_driver_reads_no_metadata_once_cached(tmp_path):
    """The whole process: the second `pipelinectl` run never imports importlib.metadata."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINECTL_", "XDG_"))}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    cwd = tmp_path / "cwd"  # `python -c` puts the working directory on sys.path: one that stays put
    cwd.mkdir()
    _settle(cwd)
    code = ("import sys\nfrom pipelinectl import plugins\nplugins.driver_entries()\n"
            "print('importlib.metadata' in sys.modules)\n")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)
    assert (first.returncode, first.stdout.strip()) == (0, "True"), first
    assert (tmp_path / "cache" / "pipelinectl" / "plugins.json").exists()
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                            cwd=cwd)
    assert (second.returncode, second.stdout.strip()) == (0, "False"), second
