"""The plugin host: entry points, allow-list, broken plugins, `doctagger plugins`."""
from __future__ import annotations

import json
import sys
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


@pytest.fixture(autouse=True)
def _clean_cli():
    """Commands that plugins add in a test are taken off the root group afterwards."""
    from doctagger.cli import cli

    before = dict(cli.commands)
    names = vars(cli).get("_plugin_command_names")
    yield
    cli.commands.clear()
    cli.commands.update(before)
    vars(cli).pop("_plugin_state", None)
    # which of those commands plugins added, so that the next plugin set takes them off
    if names is None:
        vars(cli).pop("_plugin_command_names", None)
    else:
        cli._plugin_command_names = names


@pytest.fixture
def use_entry_points(monkeypatch):
    """use_entry_points(ep, ...): these are the installed entry points (plugins reloaded)."""
    def use(*eps):
        def entry_points(group=None):
            assert group == plugins.ENTRY_POINT_GROUP
            return list(eps)

        monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)
        plugins.reset()
        return list(eps)

    return use


@pytest.fixture
def fake_entry_points(use_entry_points):
    return use_entry_points(
        _FakeEntryPoint("good", "doctagger-good", _good_plugin),
        _FakeEntryPoint("broken", "doctagger-broken", _broken_plugin),
    )


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


def _error_line(result) -> str:
    """The one line a user sees after 'Error: '."""
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


# -- 1. a failing register_commands hook is visible ----------------------------------------------
def _commands_fail_plugin():
    @hookimpl
    def register_task_types(register):
        register(Colour)

    @hookimpl
    def register_commands(cli):
        import doctagger_hello_missing_submodule  # noqa: F401

    return _module("dt_cmdfail", register_task_types=register_task_types,
                   register_commands=register_commands)


def test_failing_register_commands_is_listed(use_entry_points, invoke):
    use_entry_points(_FakeEntryPoint("hello", "doctagger-hello", _commands_fail_plugin))
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    assert "hello (doctagger-hello 1.0)" in result.output
    assert ("FAILED: register_commands: ModuleNotFoundError: No module named "
            "'doctagger_hello_missing_submodule'") in result.output
    assert "task types: colour" in result.output  # what did work is still shown
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json").stdout)}
    assert rows["hello"]["loaded"] is True
    assert rows["hello"]["error"].startswith("register_commands: ModuleNotFoundError")
    assert len([r for r in rows.values() if r["name"] == "hello"]) == 1


def test_failures_runs_register_commands_without_the_cli(use_entry_points):
    use_entry_points(_FakeEntryPoint("hello", "doctagger-hello", _commands_fail_plugin))
    assert [(f.name, f.stage) for f in plugins.failures()] == [("hello", "register_commands")]
    assert len(plugins.failures()) == 1  # recorded once, however often the hook runs


def test_unknown_command_says_which_plugin_failed_to_register_commands(use_entry_points,
                                                                        invoke):
    use_entry_points(_FakeEntryPoint("hello", "doctagger-hello", _commands_fail_plugin))
    result = invoke("hello")
    assert result.exit_code == 2
    assert _error_line(result) == (
        "Error: No such command 'hello'. (plugin 'doctagger-hello' failed to register its "
        "commands: ModuleNotFoundError: No module named 'doctagger_hello_missing_submodule'; "
        "run 'doctagger plugins')")


def test_unknown_command_mentions_a_plugin_that_failed_to_load(fake_entry_points, invoke):
    result = invoke("broken")
    assert result.exit_code == 2
    line = _error_line(result)
    assert line.startswith("Error: No such command 'broken'. (plugin 'doctagger-broken' "
                           "failed to load: ImportError: No module named 'missing_dependency'")


def test_a_mistyped_command_does_not_blame_an_unrelated_plugin(fake_entry_points, invoke):
    """A plugin that failed to load is named only for a command of its own name."""
    result = invoke("sttaus")
    assert result.exit_code == 2
    line = _error_line(result)
    assert line.startswith("Error: No such command 'sttaus'.")
    assert "plugin" not in line and "broken" not in line


def test_a_failed_register_commands_is_named_for_any_unknown_command(use_entry_points,
                                                                     invoke):
    use_entry_points(_FakeEntryPoint("hello", "doctagger-hello", _commands_fail_plugin))
    line = _error_line(invoke("greet"))
    assert line.startswith("Error: No such command 'greet'. (plugin 'doctagger-hello' failed "
                           "to register its commands: ModuleNotFoundError")


def test_unknown_command_of_a_plugin_left_out_by_the_allow_list(use_entry_points, invoke,
                                                                monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "good")
    use_entry_points(_FakeEntryPoint("good", "doctagger-good", _good_plugin),
                     _FakeEntryPoint("kw", "doctagger-keywords", _good_plugin))
    result = invoke("keywords")
    assert result.exit_code == 2
    assert _error_line(result) == (
        "Error: No such command 'keywords'. (plugin 'doctagger-keywords' is installed but "
        "DOCTAGGER_LOAD_PLUGINS=good leaves it out: add 'kw' to it)")
    assert _error_line(invoke("nope")) == "Error: No such command 'nope'."
    # it comes before an unrelated plugin's failed register_commands, which other commands get
    use_entry_points(_FakeEntryPoint("good", "doctagger-good", _commands_fail_plugin),
                     _FakeEntryPoint("kw", "doctagger-keywords", _good_plugin))
    assert _error_line(invoke("keywords")) == (
        "Error: No such command 'keywords'. (plugin 'doctagger-keywords' is installed but "
        "DOCTAGGER_LOAD_PLUGINS=good leaves it out: add 'kw' to it)")
    assert _error_line(invoke("nope")).startswith(
        "Error: No such command 'nope'. (plugin 'doctagger-good' failed to register its "
        "commands")


def test_unknown_command_without_failures_is_unchanged(use_entry_points, invoke):
    use_entry_points(_FakeEntryPoint("good", "doctagger-good", _good_plugin))
    result = invoke("nope")
    assert result.exit_code == 2
    assert _error_line(result) == "Error: No such command 'nope'."


# -- 2. a wrong hook signature --------------------------------------------------------------------
def _wrong_signature_plugin():
    @hookimpl
    def register_task_types(registry):
        registry(Colour)

    return _module("dt_wrongsig", register_task_types=register_task_types)


def test_wrong_hook_signature_is_a_register_failure_that_says_what_to_do(use_entry_points,
                                                                        invoke):
    use_entry_points(_FakeEntryPoint("broken", "doctagger-broken", _wrong_signature_plugin),
                     _FakeEntryPoint("good", "doctagger-good", _good_plugin))
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json").stdout)}
    error = rows["broken"]["error"]
    assert error.startswith("register: PluginValidationError: Plugin 'broken' for hook "
                            "'register_task_types'")
    assert ("Argument(s) {'registry'} are declared in the hookimpl but can not be found in "
            "the hookspec") in error
    assert error.endswith("name the hook's arguments as the hookspec does: "
                          "register_task_types(register)")
    assert "\n" not in error
    assert rows["broken"]["loaded"] is False and rows["good"]["error"] is None
    assert not plugins.get_plugin_manager().has_plugin("broken")  # nothing half-registered
    text = invoke("plugins").output
    assert "FAILED: register: PluginValidationError" in text and "{'registry'}" in text


def _half_valid_plugin():
    @hookimpl
    def register_commands(cli):
        @cli.command(name="halfway")
        def halfway():
            """A command of a plugin that failed to register."""

    @hookimpl
    def register_task_types(registry):
        registry(Colour)

    return _module("dt_halfway", register_commands=register_commands,
                   register_task_types=register_task_types)


def test_a_plugin_refused_part_way_provides_nothing(use_entry_points, invoke, monkeypatch):
    """pluggy < 1.7 registers a plugin hook by hook, so a bad signature on its second hook
    leaves the first registered: the host takes it back off, so a plugin reported as failed
    to load provides nothing."""
    import pluggy

    original = pluggy.PluginManager.register

    def old_pluggy_register(self, plugin, name=None):
        if name != "halfway":
            return original(self, plugin, name)
        # as pluggy < 1.7 does: the name and the first hook are registered, then the second
        # hook's signature is refused
        original(self, _module("dt_halfway_part", register_commands=plugin.register_commands),
                 name)
        raise pluggy.PluginValidationError(
            plugin, f"Plugin {name!r} for hook 'register_task_types'\nhookimpl definition: "
            "register_task_types(registry)\nArgument(s) {'registry'} are declared in the "
            "hookimpl but can not be found in the hookspec")

    monkeypatch.setattr(pluggy.PluginManager, "register", old_pluggy_register)
    use_entry_points(_FakeEntryPoint("halfway", "doctagger-halfway", _half_valid_plugin),
                     _FakeEntryPoint("good", "doctagger-good", _good_plugin))
    pm = plugins.get_plugin_manager()
    assert not pm.has_plugin("halfway")
    assert all(impl.plugin_name != "halfway" for impl in pm.hook.register_commands.get_hookimpls())
    assert [(f.name, f.stage) for f in plugins.failures()] == [("halfway", "register")]
    result = invoke("halfway")
    assert result.exit_code == 2
    assert _error_line(result).startswith(
        "Error: No such command 'halfway'. (plugin 'doctagger-halfway' failed to load: "
        "PluginValidationError")
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json").stdout)}
    assert rows["halfway"]["loaded"] is False and rows["halfway"]["hooks"] == []
    assert rows["good"]["loaded"] is True and invoke("hello").exit_code == 0


def test_one_line_flattens_and_caps_long_errors():
    text = plugins._one_line(ValueError("first line\n  second line\n" + "x" * 1000))
    assert text.startswith("ValueError: first line second line xxx")
    assert "\n" not in text and len(text) == plugins.MAX_ERROR
    assert text.endswith("…")
    assert plugins._one_line(SystemExit()) == "SystemExit"


# -- 3. --check ---------------------------------------------------------------------------------
def test_check_exits_1_when_a_plugin_failed(fake_entry_points, invoke):
    plain = invoke("plugins", "--json")
    assert plain.exit_code == 0  # scripts that parse the listing keep working
    checked = invoke("plugins", "--json", "--check")
    assert checked.exit_code == 1
    assert json.loads(checked.stdout) == json.loads(plain.stdout)  # the output is the same
    assert "Error: --check: problems with broken" in checked.stderr
    text = invoke("plugins", "--check")
    assert text.exit_code == 1 and "FAILED: import: ImportError" in text.output


def test_check_exits_1_when_a_hook_failed(use_entry_points, invoke):
    use_entry_points(_FakeEntryPoint("hello", "doctagger-hello", _commands_fail_plugin))
    assert invoke("plugins", "--check").exit_code == 1


def test_check_exits_0_when_all_is_well(fake_entry_points, invoke, monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "good")
    plugins.reset()
    result = invoke("plugins", "--check", "--json")
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["good"]


def test_check_and_exit_codes_are_in_the_help(invoke):
    result = invoke("plugins", "--help")
    assert "--check" in result.output and "Exit codes" in result.output


# -- 4. an unknown task type whose plugin failed or was left out ------------------------------
def _colour_ep(loader=_good_plugin):
    return _FakeEntryPoint("colour", "doctagger-colour", loader)


def _rapidfuzz_missing():
    raise ModuleNotFoundError("No module named 'rapidfuzz'", name="rapidfuzz")


@pytest.fixture
def colour_task(use_entry_points, invoke):
    use_entry_points(_colour_ep())
    result = invoke("tasks", "create", "topics", "--type", "colour", "--labels", "a,b")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", [("tag", "topics"), ("export", "topics"),
                                     ("label", "topics")])
def test_task_type_of_a_plugin_that_failed_to_load(colour_task, use_entry_points, invoke,
                                                   command):
    use_entry_points(_colour_ep(_rapidfuzz_missing))
    result = invoke(*command)
    assert result.exit_code == 1
    assert _error_line(result) == (
        "Error: no task type 'colour': plugin 'doctagger-colour' failed to load "
        "(ModuleNotFoundError: No module named 'rapidfuzz'); fix it, or run 'doctagger "
        "plugins' for details")


def test_task_type_when_some_other_plugin_failed(colour_task, use_entry_points, invoke):
    use_entry_points(_FakeEntryPoint("other", "doctagger-other", _rapidfuzz_missing))
    line = _error_line(invoke("tag", "topics"))
    assert line.startswith("Error: no task type 'colour' (known: none are installed); plugin "
                           "'doctagger-other' failed to load (ModuleNotFoundError: No module "
                           "named 'rapidfuzz') and may provide it; fix it, or run")


def test_task_type_of_a_plugin_left_out_by_the_allow_list(colour_task, use_entry_points,
                                                          invoke, monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "plain")
    use_entry_points(_colour_ep(),
                     _FakeEntryPoint("plain", "doctagger-plain", lambda: _module("dt_plain")))
    line = _error_line(invoke("tag", "topics"))
    assert line == ("Error: no task type 'colour': plugin 'doctagger-colour' is installed but "
                    "DOCTAGGER_LOAD_PLUGINS=plain leaves it out: add 'colour' to it")


def test_unknown_task_type_mentions_the_allow_list(fake_entry_points, monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "good")
    plugins.reset()
    with pytest.raises(plugins.PluginError) as info:
        plugins.get_task_type("shape")
    assert str(info.value) == (
        "no task type 'shape' (known: colour); DOCTAGGER_LOAD_PLUGINS=good is set and may "
        "leave its plugin out: add the plugin's name to it, or install the plugin that "
        "provides it")


def test_unknown_task_type_without_failures_keeps_its_message(use_entry_points):
    use_entry_points(_FakeEntryPoint("good", "doctagger-good", _good_plugin))
    with pytest.raises(plugins.PluginError) as info:
        plugins.get_task_type("shape")
    assert str(info.value) == ("no task type 'shape' (known: colour); install the plugin that "
                               "provides it and check 'doctagger plugins'")


# -- 5. allow-list names that match nothing, unknown hooks, sys.exit() ------------------------
def test_allow_list_name_that_matches_nothing_is_warned_about(fake_entry_points, invoke,
                                                              monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "good,nonexistent")
    plugins.reset()
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "good (doctagger-good 1.0)" in result.stdout
    assert ("Warning: DOCTAGGER_LOAD_PLUGINS names 'nonexistent', but no installed plugin "
            "has that entry-point or distribution name (installed: broken, good)"
            in result.stderr)
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json").stdout)}
    assert rows["nonexistent"]["loaded"] is False and rows["nonexistent"]["error"] is None
    assert "names 'nonexistent'" in rows["nonexistent"]["warnings"][0]
    assert rows["good"]["warnings"] == []
    assert invoke("plugins", "--check").exit_code == 1


def test_allow_list_matching_nothing_at_all(fake_entry_points, invoke, monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "nonexistent")
    plugins.reset()
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "No plugins loaded." in result.stderr
    assert "Warning: DOCTAGGER_LOAD_PLUGINS names 'nonexistent'" in result.stderr


def test_misspelled_hook_is_flagged(register_plugin, invoke, monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    plugins.reset()

    def register_task_type(register):
        register(Colour)

    def register_widgets(register):
        pass

    register_plugin(_module("dt_typo", register_task_type=hookimpl(register_task_type),
                            register_widgets=hookimpl(optionalhook=True)(register_widgets)),
                    "typo")
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "hooks: register_task_type (unknown), register_widgets" in result.output
    assert ("warning: unknown hook 'register_task_type': doctagger never calls it; did you "
            "mean 'register_task_types'?") in result.output
    row = json.loads(invoke("plugins", "--json").stdout)[0]
    assert row["error"] is None and len(row["warnings"]) == 1  # optionalhook: not flagged
    assert invoke("plugins", "--check").exit_code == 1


def _exits_at_import():
    sys.exit("doctagger-quitter needs a licence key")


def test_sys_exit_at_import_is_a_failure_of_that_plugin(use_entry_points, invoke):
    use_entry_points(_FakeEntryPoint("quitter", "doctagger-quitter", _exits_at_import),
                     _FakeEntryPoint("good", "doctagger-good", _good_plugin))
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    assert "FAILED: import: SystemExit: doctagger-quitter needs a licence key" in result.output
    assert "task types: colour" in result.output
    assert invoke("hello").output == "hello from a plugin\n"


def test_sys_exit_in_a_hook_is_a_failure_of_that_plugin(register_plugin, invoke):
    def register_task_types(register):
        sys.exit(3)

    register_plugin(_module("dt_exit", register_task_types=hookimpl(register_task_types)),
                    "exiter")
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    assert "FAILED: register_task_types: SystemExit: 3" in result.output


def test_ctrl_c_while_importing_a_plugin_is_not_swallowed(use_entry_points):
    def interrupted():
        raise KeyboardInterrupt

    use_entry_points(_FakeEntryPoint("slow", "doctagger-slow", interrupted))
    with pytest.raises(KeyboardInterrupt):
        plugins.state()
