"""The plugin host: one pluggy PluginManager, loaded once, through one door.

- Essential plugins (the core's own extractors) are always registered.
- Everything else, first-party task types included, comes from the ``doctagger``
  entry-point group. ``DOCTAGGER_LOAD_PLUGINS`` (comma-separated distribution or
  entry-point names; empty = none) limits which load, like ``LLM_LOAD_PLUGINS``.
- A plugin that fails to import or to register (a bad hook signature), or whose hook
  raises (``sys.exit()`` included), is recorded in ``failures()`` with its stage and
  reported by ``doctagger plugins``; the rest keeps working. Errors that a missing plugin
  explains (an unknown task type or command) say which plugin failed and why (those
  messages and the listing are in :mod:`doctagger.plugin_report`).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

import pluggy

from doctagger import entrypoints, hookspecs
from doctagger.errors import PluginError

ENTRY_POINT_GROUP = "doctagger"
ENV_ALLOW = "DOCTAGGER_LOAD_PLUGINS"
ESSENTIAL_PLUGINS = ("doctagger.extractors",)
#: longest plugin error kept (before the hint of what to do), in characters
MAX_ERROR = 300
#: stages after which a plugin provides nothing at all
LOAD_STAGES = ("import", "register")


@dataclass
class PluginFailure:
    name: str
    distribution: str | None
    error: str
    # import | register (pluggy refused the hooks) | register_task_types |
    # register_extractors | register_commands
    stage: str = "import"

    @property
    def label(self) -> str:
        """How messages name the plugin: its distribution, else its entry-point name."""
        return self.distribution or self.name

    def what_failed(self) -> str:
        return _WHAT_FAILED.get(self.stage, f"failed in {self.stage}")


_WHAT_FAILED = {
    "import": "failed to load", "register": "failed to load",
    "register_task_types": "failed to register its task types",
    "register_extractors": "failed to register its extractors",
    "register_commands": "failed to register its commands",
}


@dataclass
class _State:
    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    dists: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin name -> (dist, version)
    task_types: dict[str, object] | None = None
    task_type_owner: dict[str, str] = field(default_factory=dict)
    extractors: list | None = None
    extractor_owner: dict[str, str] = field(default_factory=dict)
    installed: list[tuple[str, str | None]] = field(default_factory=list)  # every entry point
    excluded: list[tuple[str, str | None]] = field(default_factory=list)  # not allowed
    unmatched: list[str] = field(default_factory=list)  # allow-list names matching nothing
    ran: set[str] = field(default_factory=set)  # hooks called since the last (un)register


_state: _State | None = None


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _allowed_names() -> list[str] | None:
    value = os.environ.get(ENV_ALLOW)
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


def _one_line(exc: BaseException, limit: int = MAX_ERROR) -> str:
    """``Type: message`` on one line (newlines flattened, at most ``limit`` characters),
    then what to do where the host knows it."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split()).rstrip(":")
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    hint = _hint(exc)
    return f"{text}; {hint}" if hint else text


def _hint(exc: BaseException) -> str:
    """What to do about a hook pluggy refused: the hookspec's argument names."""
    import re

    if not isinstance(exc, pluggy.PluginValidationError):
        return ""
    found = re.search(r"for hook '(\w+)'", str(exc))
    spec = getattr(hookspecs, found.group(1), None) if found else None
    if spec is None or "hookspec" not in str(exc):
        return ""
    import inspect

    return (f"name the hook's arguments as the hookspec does: "
            f"{spec.__name__}{inspect.signature(spec)}")


def _record(st: _State, name: str, dist: str | None, exc: BaseException, stage: str) -> None:
    if os.environ.get("DOCTAGGER_RAISE_ERRORS") and stage in LOAD_STAGES:
        import traceback

        traceback.print_exc()
    if not any(f.name == name and f.stage == stage for f in st.failures):
        st.failures.append(PluginFailure(name, dist or None, _one_line(exc), stage))


def _unregister_quietly(pm: pluggy.PluginManager, name: str) -> None:
    """Take off whatever a failed ``pm.register(plugin, name=name)`` left registered, so a
    plugin that failed to load provides nothing. pluggy 1.7 validates every hook before
    registering any, but older versions (pyproject allows pluggy>=1.3) register the name,
    then hook by hook, and stop at the first bad one. The name was free before the call."""
    try:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
    except Exception:  # never let the cleanup hide the failure being recorded
        pass


def _load() -> _State:
    pm = pluggy.PluginManager("doctagger")
    pm.add_hookspecs(hookspecs)
    state = _State(pm=pm)
    for module_name in ESSENTIAL_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    names = _allowed_names()
    allowed = None if names is None else {_normalise(n) for n in names}
    matched: set[str] = set()
    for ep in sorted(entrypoints.entry_points(ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else ""
        state.installed.append((ep.name, dist))
        if allowed is not None:
            hits = allowed & {_normalise(ep.name), _normalise(dist or ep.name)}
            matched |= hits
            if not hits:
                state.excluded.append((ep.name, dist))
                continue
        if pm.has_plugin(ep.name):
            continue
        # a broken plugin must not break the CLI, not even with sys.exit()
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            _record(state, ep.name, dist, exc, "import")
            continue
        try:
            pm.register(plugin, name=ep.name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            _unregister_quietly(pm, ep.name)
            _record(state, ep.name, dist, exc, "register")
            continue
        state.dists[ep.name] = (dist or "", version)
    if names:
        state.unmatched = list(dict.fromkeys(n for n in names if _normalise(n) not in matched))
    return state


def __getattr__(name):
    # ``plugins.metadata`` is importlib.metadata, imported on first use: the host reads entry
    # points through doctagger.entrypoints, which asks importlib.metadata once it is loaded
    # (so patching ``plugins.metadata.entry_points`` still works).
    if name == "metadata":
        from importlib import metadata

        return metadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def state() -> _State:
    global _state
    if _state is None:
        _state = _load()
    return _state


def get_plugin_manager() -> pluggy.PluginManager:
    return state().pm


def reset() -> None:
    """Forget loaded plugins (tests use this after changing the environment)."""
    global _state
    _state = None


def register_plugin(plugin, name: str) -> None:
    """Register an in-process plugin object or module (tests, scripts)."""
    st = state()
    st.pm.register(plugin, name=name)
    st.task_types = None
    st.extractors = None
    st.ran.clear()


def unregister_plugin(name: str) -> None:
    st = state()
    plugin = st.pm.get_plugin(name)
    if plugin is not None:
        st.pm.unregister(plugin)
    st.failures = [f for f in st.failures if f.name != name]
    st.task_types = None
    st.extractors = None
    st.ran.clear()


def call_each(hook_name: str, _before=None, **kwargs) -> None:
    """Call every implementation of a hook on its own, so that one plugin's failure is
    recorded against it and does not stop the others. ``_before(plugin_name)`` is called
    before each implementation."""
    st = state()
    st.ran.add(hook_name)
    caller = getattr(st.pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        args = {k: v for k, v in kwargs.items() if k in impl.argnames}
        if _before is not None:
            _before(impl.plugin_name)
        try:
            impl.function(**args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit included: one plugin must not end the CLI
            if os.environ.get("DOCTAGGER_RAISE_ERRORS"):
                raise
            dist = st.dists.get(impl.plugin_name, (None, ""))[0]
            _record(st, impl.plugin_name, dist, exc, hook_name)


def task_types() -> dict[str, object]:
    """name -> task type instance, from every plugin's register_task_types."""
    st = state()
    if st.task_types is None:
        found: dict[str, object] = {}
        owner = {"name": None}

        def register(task_type):
            instance = task_type() if isinstance(task_type, type) else task_type
            name = getattr(instance, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"{task_type!r} has no 'name': give the task type class a name attribute")
            found[name] = instance
            st.task_type_owner[name] = owner["name"]

        call_each("register_task_types", register=register,
                  _before=lambda plugin_name: owner.__setitem__("name", plugin_name))
        st.task_types = found
    return st.task_types


def get_task_type(name: str):
    types = task_types()
    if name not in types:
        from doctagger.plugin_report import missing_task_type

        raise PluginError(missing_task_type(name))
    return types[name]


def extractors() -> list:
    """Registered extractors, later registrations first (a plugin can override a suffix)."""
    st = state()
    if st.extractors is None:
        found: list = []
        owner = {"name": None}

        def register(extractor):
            found.append(extractor)
            st.extractor_owner[getattr(extractor, "name", repr(extractor))] = owner["name"]

        call_each("register_extractors", register=register,
                  _before=lambda plugin_name: owner.__setitem__("name", plugin_name))
        st.extractors = list(reversed(found))
    return st.extractors


def run_commands_hook(cli=None) -> None:
    """Call register_commands, if it has not run since plugins were (un)registered, on
    ``cli`` (default: a scratch group) so that its failures are recorded."""
    if "register_commands" not in state().ran:
        if cli is None:
            import click

            cli = click.Group("doctagger")
        call_each("register_commands", cli=cli)


def failures() -> list[PluginFailure]:
    """Every plugin failure, after running every hook stage (task types, extractors,
    commands)."""
    st = state()
    task_types()
    extractors()
    run_commands_hook()
    return list(st.failures)
