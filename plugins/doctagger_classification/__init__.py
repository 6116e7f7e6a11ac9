"""First-party task type: text classification (single- or multi-label, chunk or document level).

Found by the core only through the ``doctagger`` entry point
(``classification = "doctagger_classification"`` in pyproject.toml); the core names no task
type. Heavy libraries (torch, transformers, scikit-learn) are imported inside the functions
that use them, so loading this plugin costs nothing.
"""
from doctagger.hookspecs import hookimpl


@hookimpl
def register_task_types(register):
    from doctagger_classification.tasktype import ClassificationTaskType

    register(ClassificationTaskType)
