"""Keyword rules in the index.

The working copy of a task's rules lives in its options (``tasks.options`` →
``{"rules": {label: rule}}``). Every change also registers a new model version whose folder
holds a ``rules.json`` snapshot, and activates it: ``doctagger tag`` then re-tags with the
new rules (its predictions are per version), ``doctagger models TASK`` lists the rule
versions and ``doctagger models use TASK N`` (then ``doctagger tag TASK --all``) goes back
to older rules.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from doctagger.errors import InvalidInputError
from doctagger.tasktypes import Task

if TYPE_CHECKING:  # the index (sqlite-utils) loads only when a command runs
    from doctagger.index import Index

from doctagger_keywords.rules import Rule
from doctagger_keywords.tasktype import rules_for, write_rules

TASK_TYPE = "keywords"


def keywords_task(index: Index, name: str) -> Task:
    """The task, refusing one of another type."""
    task = index.task(name)
    if task.type != TASK_TYPE:
        raise InvalidInputError(f"task '{name}' is a '{task.type}' task; keyword rules belong "
                                f"to tasks made with 'doctagger tasks create NAME --type "
                                f"{TASK_TYPE} --labels A,B'")
    return task


def keywords_tasks(index: Index) -> list[Task]:
    names = [r["name"] for r in index.query("select name from tasks where type = ? "
                                            "order by name", [TASK_TYPE])]
    return [index.task(name) for name in names]


def get_rules(task: Task) -> dict[str, Rule]:
    return rules_for(task)


def save_rules(index: Index, task: Task, rules: dict[str, Rule]) -> int:
    """Store ``rules`` as the task's rules and as a new, active model version.
    Returns the version number."""
    from doctagger import registry

    unknown = sorted(set(rules) - set(task.labels))
    if unknown:
        raise InvalidInputError(f"{', '.join(unknown)} not among the labels of task "
                                f"'{task.name}' ({', '.join(task.labels)})")
    data = {label: rules[label].to_dict() for label in task.labels if label in rules}
    options = dict(task.options or {}, rules=data)
    version, path = registry.new_version_dir(index, task)
    try:
        write_rules(path, {label: rules[label] for label in data})
        # One transaction: the task's rules and the version that snapshots them change
        # together.
        with index.write("saving keyword rules") as db:
            db["tasks"].update(task.id, {"options": json.dumps(options, ensure_ascii=False)})
            row = registry.register_version(
                index, task, version, path, base_model=None, method="rules", params={},
                data_fingerprint=None, metrics={},
                info={"rules": data, "task_type": TASK_TYPE})
    finally:
        registry.discard(path if path.exists() else None)
    task.options = options
    return row["version"]


def set_rule(index: Index, task: Task, label: str, rule: Rule) -> int:
    if label not in task.labels:
        raise InvalidInputError(f"'{label}' is not a label of task '{task.name}' (labels: "
                                f"{', '.join(task.labels)}); add it with: doctagger tasks "
                                f"add-labels {task.name} {label}")
    rules = get_rules(task)
    rules[label] = rule
    return save_rules(index, task, rules)


def remove_rule(index: Index, task: Task, label: str) -> int:
    rules = get_rules(task)
    if label not in rules:
        raise InvalidInputError(f"label '{label}' of task '{task.name}' has no rule; see "
                                f"'doctagger keywords list {task.name}'")
    del rules[label]
    return save_rules(index, task, rules)
