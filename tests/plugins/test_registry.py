"""The plugin registry in-process: discovery, registration, load errors, unsupported verbs."""

from __future__ import annotations

import sys
import textwrap

import pytest

from pipelinectl import plugins
from pipelinectl.errors import ExitCode, InternalError, UnsupportedError, UsageError
from pipelinectl.model import SagaFilter
from pipelinectl.plane import Connection
from tests.plugins.support import install_example, write_distribution


def conn(driver: str, **kw) -> Connection:
    return Connection(context="ctx", driver=driver, url="http://127.0.0.1:1", **kw)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh site directory on sys.path, forgotten afterwards."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for name in [m for m in sys.modules if m.startswith(("pipelinectl_hello", "fakeplane", "brokenplane"))]:
        del sys.modules[name]


def test_installed_plugins_are_kept_out_of_the_tests():
    assert set(plugins.driver_entries()) == {"http"}
    assert plugins.command_entries() == {}


def test_a_registered_driver_is_built_and_listed_then_gone(site):
    (site / "fakeplane.py").write_text(textwrap.dedent('''
        from pipelinectl.plane import Capability, UnsupportedVerbs

        class FakePlane(UnsupportedVerbs):
            driver = "fake"
            capabilities = frozenset({Capability.SAGA_LIST, Capability.STATUS})

            def __init__(self, connection):
                self.connection = connection
    '''))
    plugins.register(plugins.PluginEntry("fake", "driver", "fakeplane:FakePlane", distribution="fake-dist",
                                         version="9.9"))
    try:
        plane = plugins.make_driver(conn("fake"))
        assert plane.driver == "fake" and plane.connection.context == "ctx"
        listed = {(p.name, p.type): p for p in plugins.list_plugins(include_external=False)}
        fake = listed[("fake", "driver")]
        assert (fake.version, fake.distribution, fake.error) == ("9.9", "fake-dist", None)
        assert fake.capabilities == ["saga-list", "status"]
        with pytest.raises(UnsupportedError) as err:
            plane.dlq_list(None)
        assert err.value.exit_code == ExitCode.UNSUPPORTED == 7
        assert err.value.message == "'dlq list' is not supported by the fake driver"
    finally:
        plugins.unregister("fake", "driver")
    assert "fake" not in plugins.driver_entries()
    with pytest.raises(UsageError, match="driver 'fake', which is not installed"):
        plugins.make_driver(conn("fake"))


def test_a_broken_plugin_is_listed_with_its_error_and_named_when_used(site):
    (site / "brokenplane.py").write_text("raise RuntimeError('missing dependency: libfoo')\n")
    plugins.register(plugins.PluginEntry("broken", "driver", "brokenplane:Plane", distribution="broken-dist"))
    plugins.register(plugins.PluginEntry("gone", "command", "no_such_module_xyz:app", distribution="gone-dist"))
    try:
        listed = {(p.name, p.type): p for p in plugins.list_plugins(include_external=False)}
        assert "RuntimeError: missing dependency: libfoo" in listed[("broken", "driver")].error
        assert "ModuleNotFoundError" in listed[("gone", "command")].error
        assert listed[("http", "driver")].builtin  # the others are still there
        with pytest.raises(InternalError) as err:
            plugins.make_driver(conn("broken"))
        assert "driver plugin 'broken' (broken-dist) failed to load" in err.value.message
        assert "libfoo" in err.value.message
    finally:
        plugins.unregister("broken", "driver")
        plugins.unregister("gone", "command")


def test_discovery_reads_entry_points_from_metadata_without_importing(site, monkeypatch):
    name = install_example(site)
    write_distribution(site, "other-plugin", "1.0", {"pipelinectl.drivers": {"other": "other_mod:Plane"}})
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, name)
    plugins.clear_cache()
    drivers = plugins.driver_entries()
    assert set(drivers) == {"http", "hello"}  # other-plugin is not in PIPELINECTL_LOAD_PLUGINS
    hello = drivers["hello"]
    assert (hello.distribution, hello.version, hello.target) == ("pipelinectl-hello", "0.1.0",
                                                                 "pipelinectl_hello:HelloPlane")
    assert "pipelinectl_hello" not in sys.modules  # discovery read metadata only
    assert set(plugins.command_entries()) == {"hello"}

    plane = plugins.make_driver(conn("hello", pipeline="orders"))
    (pipeline,) = plane.status()
    assert pipeline.name == "orders" and pipeline.driver == "hello"
    with pytest.raises(UnsupportedError, match="'saga list' is not supported by the hello driver"):
        plane.saga_list(SagaFilter(pipeline="orders"))

    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV)
    plugins.clear_cache()
    assert {"hello", "other"} <= set(plugins.driver_entries())


def test_a_registered_entry_wins_over_an_installed_one(site, monkeypatch):
    name = install_example(site)
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, name)
    plugins.clear_cache()
    plugins.register(plugins.PluginEntry("hello", "driver", "somewhere_else:Plane"))
    try:
        assert plugins.driver_entries()["hello"].target == "somewhere_else:Plane"
    finally:
        plugins.unregister("hello")
    assert plugins.driver_entries()["hello"].target == "pipelinectl_hello:HelloPlane"


def test_register_refuses_an_unknown_kind():
    with pytest.raises(ValueError):
        plugins.register(plugins.PluginEntry("x", "exporter", "m:a"))
