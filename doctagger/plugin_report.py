"""What the plugin host reports: the rows of `doctagger plugins`, and the one-line
messages for things a missing or broken plugin explains (an unknown task type or command).
The loading itself is doctagger.plugins."""
from __future__ import annotations

import os

from doctagger import hookspecs
from doctagger.plugins import (ENV_ALLOW, ESSENTIAL_PLUGINS, LOAD_STAGES, PluginFailure,
                               _normalise, extractors, failures, state, task_types)


def _provides(thing: str, name: str, dist: str | None) -> bool:
    """Whether a plugin's names suggest it provides ``thing`` (a task type or command):
    entry point ``keywords`` or distribution ``doctagger-keywords`` for ``keywords``."""
    thing = _normalise(thing)
    names = {_normalise(name)}
    if dist:
        names |= {_normalise(dist), _normalise(dist).removeprefix("doctagger-")}
    return thing in names


def _allow_list_note() -> str:
    value = os.environ.get(ENV_ALLOW)
    if value is None:
        return ""
    if not value.strip():
        return (f"{ENV_ALLOW} is set but empty, so no plugin loads: unset it, or add the "
                "plugin's name to it")
    return (f"{ENV_ALLOW}={value} is set and may leave its plugin out: add the plugin's "
            "name to it, or install the plugin that provides it")


def missing_task_type(name: str) -> str:
    """The one-line message for an unknown task type: which failed or excluded plugin may
    provide it, else the known types."""
    st = state()
    known = ", ".join(sorted(task_types())) or "none are installed"
    failed = [f for f in st.failures if f.stage in (*LOAD_STAGES, "register_task_types")]
    for f in failed:
        if _provides(name, f.name, f.distribution):
            return (f"no task type '{name}': plugin '{f.label}' {f.what_failed()} "
                    f"({f.error}); fix it, or run 'doctagger plugins' for details")
    for ep_name, dist in st.excluded:
        if _provides(name, ep_name, dist):
            return (f"no task type '{name}': plugin '{dist or ep_name}' is installed but "
                    f"{ENV_ALLOW}={os.environ.get(ENV_ALLOW, '')} leaves it out: add "
                    f"'{ep_name}' to it")
    parts = [f"no task type '{name}' (known: {known})"]
    if failed:
        f = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        parts.append(f"plugin '{f.label}'{more} {f.what_failed()} ({f.error}) and may "
                     "provide it; fix it, or run 'doctagger plugins' for details")
    if st.excluded and _allow_list_note():
        parts.append(_allow_list_note())
    if len(parts) == 1:
        parts.append("install the plugin that provides it and check 'doctagger plugins'")
    return "; ".join(parts)


def missing_command_hint(command: str) -> str:
    """What to add to "No such command 'X'." (``""`` when nothing explains it): one line,
    in parentheses. In this order: a plugin of the command's name (entry-point or
    distribution) that failed; one that the allow-list leaves out; any plugin that failed
    in register_commands. A plugin that failed to load is not named for other commands."""
    st = state()
    named = [f for f in st.failures if f.stage in (*LOAD_STAGES, "register_commands")
             and _provides(command, f.name, f.distribution)]
    commands_failed = [f for f in st.failures
                       if f.stage == "register_commands" and f not in named]
    excluded = [(ep_name, dist) for ep_name, dist in st.excluded
                if _provides(command, ep_name, dist)]
    if not named and excluded:
        ep_name, dist = excluded[0]
        return (f"(plugin '{dist or ep_name}' is installed but "
                f"{ENV_ALLOW}={os.environ.get(ENV_ALLOW, '')} leaves it out: add "
                f"'{ep_name}' to it)")
    failed = sorted(named, key=lambda f: f.stage != "register_commands") + commands_failed
    if not failed:
        return ""
    f = failed[0]
    more = f" (and {len(failed) - 1} more plugin failures)" if len(failed) > 1 else ""
    return f"(plugin '{f.label}' {f.what_failed()}: {f.error}{more}; run 'doctagger plugins')"


def unknown_hooks() -> dict[str, list[str]]:
    """plugin name -> its hook implementations that match no hookspec (a misspelling:
    pluggy never calls them); ``optionalhook=True`` ones are left out, as check_pending
    does."""
    found: dict[str, list[str]] = {}
    for hook_name, caller in sorted(vars(state().pm.hook).items()):
        if hook_name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                found.setdefault(impl.plugin_name, []).append(hook_name)
    return found


def _unknown_hook_warning(hook_name: str) -> str:
    from difflib import get_close_matches

    specs = sorted(n for n, f in vars(hookspecs).items() if hasattr(f, "doctagger_spec"))
    close = get_close_matches(hook_name, specs, n=1)
    guess = f"did you mean '{close[0]}'? " if close else ""
    return (f"unknown hook '{hook_name}': doctagger never calls it; {guess}"
            f"(doctagger's hooks: {', '.join(specs)})")


def _unmatched_warning(name: str, installed: list[tuple[str, str | None]]) -> str:
    names = ", ".join(sorted({ep for ep, _ in installed})) or "none"
    return (f"{ENV_ALLOW} names '{name}', but no installed plugin has that entry-point or "
            f"distribution name (installed: {names}); check the spelling, or install it")


def _row(name, **values) -> dict:
    row = {"name": name, "distribution": None, "version": None, "essential": False,
           "loaded": False, "hooks": [], "task_types": [], "extractors": [], "error": None,
           "warnings": []}
    row.update(values)
    return row


def plugin_info() -> list[dict]:
    """What `doctagger plugins` shows: every loaded plugin, its hooks and what it provides
    (with its hooks' failures and warnings), then every plugin that failed to load, then
    every DOCTAGGER_LOAD_PLUGINS name that matched no installed plugin."""
    st = state()
    types = task_types()
    exts = extractors()
    failed: dict[str, list[PluginFailure]] = {}
    for failure in failures():
        failed.setdefault(failure.name, []).append(failure)
    unknown = unknown_hooks()
    rows = []
    for name, plugin in sorted(st.pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = sorted(c.name for c in (st.pm.get_hookcallers(plugin) or []))
        dist, version = st.dists.get(name, ("doctagger" if name in ESSENTIAL_PLUGINS else "", ""))
        if name in ESSENTIAL_PLUGINS:
            from doctagger import __version__ as version
        own = failed.pop(name, [])
        rows.append(_row(
            name, distribution=dist or None, version=version or None,
            essential=name in ESSENTIAL_PLUGINS, loaded=True, hooks=hooks,
            task_types=sorted(t for t in types if st.task_type_owner.get(t) == name),
            extractors=sorted(getattr(e, "name", repr(e)) for e in exts
                              if st.extractor_owner.get(getattr(e, "name", repr(e))) == name),
            error="; ".join(f"{f.stage}: {f.error}" for f in own) or None,
            warnings=[_unknown_hook_warning(h) for h in unknown.get(name, [])]))
    for name, own in failed.items():
        rows.append(_row(name, distribution=own[0].distribution,
                         error="; ".join(f"{f.stage}: {f.error}" for f in own)))
    for name in st.unmatched:
        rows.append(_row(name, warnings=[_unmatched_warning(name, st.installed)]))
    return rows
