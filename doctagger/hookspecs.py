"""The hooks a doctagger plugin can implement. Each takes a `register` callback (or the CLI)."""
import pluggy

hookspec = pluggy.HookspecMarker("doctagger")
hookimpl = pluggy.HookimplMarker("doctagger")


@hookspec
def register_task_types(register):
    """Register task types: call ``register(TaskTypeClass)`` once for each."""


@hookspec
def register_extractors(register):
    """Register text extractors: call ``register(extractor)``; see doctagger.extractors."""


@hookspec
def register_commands(cli):
    """Add Click commands or groups to the ``doctagger`` command group ``cli``."""
