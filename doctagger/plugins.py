"""The plugin host: one pluggy PluginManager, loaded once, through one door.

- Essential plugins (the core's own extractors) are always registered.
- Everything else, first-party task types included, comes from the ``doctagger``
  entry-point group. ``DOCTAGGER_LOAD_PLUGINS`` (comma-separated distribution or
  entry-point names; empty = none) limits which load, like ``LLM_LOAD_PLUGINS``.
- A plugin that fails to import, or whose hook raises, is recorded in ``failures()`` and
  reported by ``doctagger plugins``; the rest keeps working.
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


@dataclass
class PluginFailure:
    name: str
    distribution: str | None
    error: str
    stage: str = "import"  # import | register_task_types | register_extractors | register_commands


@dataclass
class _State:
    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    dists: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin name -> (dist, version)
    task_types: dict[str, object] | None = None
    task_type_owner: dict[str, str] = field(default_factory=dict)
    extractors: list | None = None
    extractor_owner: dict[str, str] = field(default_factory=dict)


_state: _State | None = None


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _allowed() -> set[str] | None:
    value = os.environ.get(ENV_ALLOW)
    if value is None:
        return None
    return {_normalise(n) for n in value.split(",") if n.strip()}


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load() -> _State:
    pm = pluggy.PluginManager("doctagger")
    pm.add_hookspecs(hookspecs)
    state = _State(pm=pm)
    for module_name in ESSENTIAL_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    allowed = _allowed()
    for ep in sorted(entrypoints.entry_points(ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else ""
        if allowed is not None and not (
            _normalise(ep.name) in allowed or (dist and _normalise(dist) in allowed)
        ):
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not break the CLI
            if os.environ.get("DOCTAGGER_RAISE_ERRORS"):
                import traceback

                traceback.print_exc()
            state.failures.append(PluginFailure(ep.name, dist, _one_line(exc)))
            continue
        state.dists[ep.name] = (dist or "", version)
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


def unregister_plugin(name: str) -> None:
    st = state()
    plugin = st.pm.get_plugin(name)
    if plugin is not None:
        st.pm.unregister(plugin)
    st.task_types = None
    st.extractors = None


def call_each(hook_name: str, **kwargs) -> None:
    """Call every implementation of a hook on its own, so that one plugin's failure is
    recorded against it and does not stop the others."""
    st = state()
    caller = getattr(st.pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        args = {k: v for k, v in kwargs.items() if k in impl.argnames}
        kwargs.get("_before", lambda name: None)(impl.plugin_name)
        try:
            impl.function(**args)
        except Exception as exc:
            if os.environ.get("DOCTAGGER_RAISE_ERRORS"):
                raise
            dist = st.dists.get(impl.plugin_name, (None, ""))[0]
            st.failures.append(PluginFailure(impl.plugin_name, dist, _one_line(exc), hook_name))


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
        known = ", ".join(sorted(types)) or "none are installed"
        raise PluginError(
            f"no task type '{name}' (known: {known}); install the plugin that provides it "
            "and check 'doctagger plugins'"
        )
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


def failures() -> list[PluginFailure]:
    st = state()
    task_types()
    extractors()
    return list(st.failures)


def plugin_info() -> list[dict]:
    """What `doctagger plugins` shows: every loaded plugin, its hooks and what it provides,
    then every plugin that failed."""
    st = state()
    types = task_types()
    exts = extractors()
    rows = []
    for name, plugin in sorted(st.pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = sorted(c.name for c in (st.pm.get_hookcallers(plugin) or []))
        dist, version = st.dists.get(name, ("doctagger" if name in ESSENTIAL_PLUGINS else "", ""))
        if name in ESSENTIAL_PLUGINS:
            from doctagger import __version__ as version
        rows.append({
            "name": name,
            "distribution": dist or None,
            "version": version or None,
            "essential": name in ESSENTIAL_PLUGINS,
            "hooks": hooks,
            "task_types": sorted(t for t in types if st.task_type_owner.get(t) == name),
            "extractors": sorted(getattr(e, "name", repr(e)) for e in exts
                                 if st.extractor_owner.get(getattr(e, "name", repr(e))) == name),
            "error": None,
        })
    for failure in st.failures:
        rows.append({
            "name": failure.name, "distribution": failure.distribution, "version": None,
            "essential": False, "hooks": [], "task_types": [], "extractors": [],
            "error": f"{failure.stage}: {failure.error}",
        })
    return rows
