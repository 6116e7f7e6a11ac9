"""First-party task type: named-entity recognition (character spans in chunk text).

Found through the ``doctagger`` entry point ``ner = "doctagger_ner"``, as a third-party
plugin would be. Heavy imports (torch, transformers) wait until a model is trained or loaded.
"""
from doctagger.hookspecs import hookimpl


@hookimpl
def register_task_types(register):
    from doctagger_ner.tasktype import NERTaskType

    register(NERTaskType)
