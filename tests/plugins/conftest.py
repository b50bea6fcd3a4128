"""Plugin tests see only the plugins they register (simonw/llm's conftest habit).

In-process: PIPELINECTL_LOAD_PLUGINS="" hides every installed entry point and
the discovery cache is cleared before and after each test (its file is in a temp dir). Subprocess tests
build a site directory holding exactly the distributions they need (a
`*.dist-info` with `entry_points.txt`, what `pip install` writes) and put it
on PYTHONPATH with PIPELINECTL_LOAD_PLUGINS naming them.
"""

from __future__ import annotations

import pytest

from pipelinectl import plugins


@pytest.fixture(autouse=True)
def no_installed_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))  # the plugin index's file
    plugins.clear_cache()
    yield
    plugins.clear_cache()
