"""The plugin host: entry points, allow-list, broken plugins, `doctagger plugins`."""
from __future__ import annotations

import json
import types
from importlib import metadata

import click
import pytest

from doctagger import hookspecs, plugins
from doctagger.hookspecs import hookimpl
from doctagger.tasktypes import TaskType


class _FakeDist:
    def __init__(self, name, version="1.0"):
        self.name = name
        self.version = version


class _FakeEntryPoint:
    """Just enough of importlib.metadata.EntryPoint for the plugin host."""

    def __init__(self, name, dist, loader):
        self.name = name
        self.dist = _FakeDist(dist)
        self._loader = loader

    def load(self):
        return self._loader()


def _module(name, **attrs):
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


class Colour(TaskType):
    name = "colour"
    description = "a test task type"


def _good_plugin():
    @hookimpl
    def register_task_types(register):
        register(Colour)

    @hookimpl
    def register_commands(cli):
        @cli.command(name="hello")
        def hello():
            """Say hello (a plugin command)."""
            click.echo("hello from a plugin")

    return _module("dt_good", register_task_types=register_task_types,
                   register_commands=register_commands)


def _broken_plugin():
    raise ImportError("No module named 'missing_dependency'")


@pytest.fixture
def fake_entry_points(monkeypatch):
    eps = [
        _FakeEntryPoint("good", "doctagger-good", _good_plugin),
        _FakeEntryPoint("broken", "doctagger-broken", _broken_plugin),
    ]

    def entry_points(group=None):
        assert group == plugins.ENTRY_POINT_GROUP
        return eps

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)
    plugins.reset()
    return eps


def test_entry_point_plugins_load_and_broken_one_is_reported(fake_entry_points, invoke):
    assert "colour" in plugins.task_types()
    failures = plugins.failures()
    assert [f.name for f in failures] == ["broken"]
    assert "missing_dependency" in failures[0].error

    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["good"]["task_types"] == ["colour"]
    assert rows["good"]["distribution"] == "doctagger-good"
    assert "register_task_types" in rows["good"]["hooks"]
    assert rows["broken"]["error"].startswith("import: ImportError")
    # the rest of the CLI works, plugin commands included
    assert invoke("status").exit_code == 0
    hello = invoke("hello")
    assert hello.exit_code == 0 and "hello from a plugin" in hello.output


def test_plain_listing_shows_failure(fake_entry_points, invoke):
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "FAILED: import: ImportError" in result.output
    assert "task types: colour" in result.output


@pytest.mark.parametrize("allow, expected", [
    ("", set()),
    ("good", {"good"}),
    ("doctagger-good", {"good"}),
    ("doctagger_good, other", {"good"}),
])
def test_allow_list(fake_entry_points, monkeypatch, allow, expected):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", allow)
    plugins.reset()
    loaded = {name for name, _ in plugins.get_plugin_manager().list_name_plugin()}
    assert loaded - set(plugins.ESSENTIAL_PLUGINS) == expected
    assert plugins.failures() == []  # the broken one was never imported


def test_hook_that_raises_is_isolated(register_plugin):
    def register_task_types(register):
        raise RuntimeError("boom")

    register_plugin(_module("dt_raiser", register_task_types=hookimpl(register_task_types)),
                    "raiser")
    register_plugin(_good_plugin(), "good2")
    assert "colour" in plugins.task_types()
    assert any(f.name == "raiser" and f.stage == "register_task_types"
               for f in plugins.failures())


def test_unknown_task_type_error_lists_known(register_plugin, monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    plugins.reset()
    register_plugin(_good_plugin(), "good3")
    with pytest.raises(Exception) as info:
        plugins.get_task_type("nope")
    assert "known: colour" in str(info.value)


def test_installed_plugins_have_no_stray_hooks():
    """Every hook implementation of the installed plugins matches a hookspec."""
    pm = plugins.get_plugin_manager()
    pm.check_pending()
    assert plugins.failures() == []


def test_hookspecs_take_register_callbacks():
    import inspect

    assert inspect.signature(hookspecs.register_task_types).parameters.keys() == {"register"}
    assert inspect.signature(hookspecs.register_extractors).parameters.keys() == {"register"}
    assert inspect.signature(hookspecs.register_commands).parameters.keys() == {"cli"}


def test_real_entry_points_are_declared():
    names = {ep.name for ep in metadata.entry_points(group="doctagger")}
    assert {"classification", "ner"} <= names
