"""Tasks: the labelling schemes of an index (create, list, show, add labels, delete).

A task names a task type (provided by a plugin: ``classification``, ``ner``, ...), its label
set, whether an item may carry several labels (``multi_label``) and whether it labels chunks
or whole documents (``level``). The task type checks the label set on creation and every
label value written later.
"""
from __future__ import annotations

import json
import re
import shutil

from doctagger.errors import InvalidInputError, InvalidLabelError
from doctagger.index import Index, now
from doctagger.tasktypes import Task, value_labels

LEVELS = ("chunk", "document")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def parse_labels(values, *, usage: str = "with --labels A,B,C") -> list[str]:
    """``"a,b" `` or ``["a,b", "c"]`` -> ``["a", "b", "c"]``; refuses empty and repeated names.
    ``usage``: how the command takes labels, for the message when none is given."""
    if isinstance(values, str):
        values = [values]
    labels: list[str] = []
    for value in values or ():
        for name in str(value).split(","):
            name = name.strip()
            if not name:
                continue
            if name in labels:
                raise InvalidLabelError(f"the label '{name}' is given twice; list each label once")
            labels.append(name)
    if not labels:
        raise InvalidLabelError(f"give at least one label {usage}")
    return labels


def label_kind(task: Task, task_type=None) -> str:
    """How the task's values look in label files: ``class``, ``classes`` (multi-label) or
    ``spans`` (NER), from the task type's ``value_kind``."""
    if task_type is None:
        from doctagger.plugins import get_task_type

        task_type = get_task_type(task.type)
    if getattr(task_type, "value_kind", "class") == "spans":
        return "spans"
    return "classes" if task.multi_label else "class"


def create_task(index: Index, name: str, *, type: str, labels, multi_label: bool = False,
                level: str = "chunk", description: str | None = None,
                options: dict | None = None) -> Task:
    """Create a task after the task type has checked the label set. Returns the Task."""
    from doctagger.plugins import get_task_type

    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidInputError(
            f"bad task name {name!r}: use letters, digits, '_', '-' or '.', starting with a "
            "letter or digit (at most 64 characters)")
    labels = parse_labels(labels)
    if level not in LEVELS:
        raise InvalidInputError(f"bad level {level!r}; use one of {', '.join(LEVELS)}")
    task_type = get_task_type(type)
    levels = tuple(getattr(task_type, "levels", LEVELS))
    if level not in levels:
        raise InvalidInputError(f"task type '{type}' labels {' or '.join(levels)}s, not "
                                f"{level}s; use --level {levels[0]}")
    if multi_label and getattr(task_type, "value_kind", "class") == "spans":
        raise InvalidInputError(f"task type '{type}' labels spans of text, which cannot be "
                                "multi-label; leave out --multi-label")
    task_type.check_labels(labels, multi_label=multi_label, level=level)
    if index.one("select id from tasks where name = ?", [name]):
        raise InvalidInputError(f"a task named '{name}' already exists; choose another name "
                                "or delete it with 'doctagger tasks delete'")
    with index.write("creating a task") as db:
        task_id = db["tasks"].insert({
            "name": name, "type": type, "labels": json.dumps(labels, ensure_ascii=False),
            "multi_label": int(bool(multi_label)), "level": level,
            "description": description, "options": json.dumps(options or {}),
            "active_model_id": None, "created_at": now(),
        }).last_pk
    return Task(id=task_id, name=name, type=type, labels=labels,
                multi_label=bool(multi_label), level=level, description=description,
                options=options or {})


def add_labels(index: Index, name: str, labels) -> tuple[Task, list[str]]:
    """Add labels to a task's label set (after the task type has checked the new set).
    Returns the task and the labels added. Labels are only ever added: removing or renaming
    one would change the meaning of the labels and predictions already stored."""
    from doctagger.plugins import get_task_type

    task = index.task(name)
    new = parse_labels(labels, usage=f"name: doctagger tasks add-labels {name} A,B")
    task_type = get_task_type(task.type)  # plugins load before the write lock is taken
    with index.write("adding labels to a task") as db:
        # Read the label set under the write lock: another add-labels that committed since
        # the read above is kept, not overwritten.
        task = index.task(name)
        present = [label for label in new if label in task.labels]
        if present:
            raise InvalidLabelError(f"task '{name}' already has the "
                                    f"label{'s' if len(present) > 1 else ''} "
                                    f"{', '.join(present)}")
        full = task.labels + new
        task_type.check_labels(full, multi_label=task.multi_label, level=task.level)
        db.execute("update tasks set labels = ? where id = ?",
                   [json.dumps(full, ensure_ascii=False), task.id])
    task.labels = full
    return task, new


def _summary(index: Index, row: dict) -> dict:
    active = None
    if row["active_model_id"] is not None:
        active = index.scalar("select version from models where id = ?", [row["active_model_id"]])
    return {
        "name": row["name"],
        "type": row["type"],
        "level": row["level"],
        "multi_label": bool(row["multi_label"]),
        "labels": json.loads(row["labels"]),
        "description": row["description"],
        "labelled": index.scalar("select count(*) from labels where task_id = ?", [row["id"]]),
        "models": index.scalar("select count(*) from models where task_id = ?", [row["id"]]),
        "active_model": active,
        "created_at": row["created_at"],
    }


def list_tasks(index: Index) -> list[dict]:
    """Every task, by name, with how many items are labelled and its active model version."""
    return [_summary(index, row) for row in index.query("select * from tasks order by name")]


def label_counts(index: Index, task: Task) -> dict[str, int]:
    """How often each label occurs in the task's labels (classes per item; entity mentions
    for NER), the task's labels first in their order, then any others found."""
    counts = {name: 0 for name in task.labels}
    for (value,) in index.conn.execute("select value from labels where task_id = ?", [task.id]):
        for name in value_labels(json.loads(value)):
            counts[name] = counts.get(name, 0) + 1
    return counts


def show_task(index: Index, name: str) -> dict:
    """What ``tasks show`` prints: the task, its label counts, models and predictions."""
    row = index.task_row(name)
    task = index.task(name)
    info = _summary(index, row)
    by_target = dict(index.conn.execute(
        "select target, count(*) from labels where task_id = ? group by target", [task.id]))
    info.update({
        "label_counts": label_counts(index, task),
        "labelled_chunks": by_target.get("chunk", 0),
        "labelled_documents": by_target.get("document", 0),
        "orphaned_labels": index.scalar(
            "select count(*) from labels where task_id = ? and target = 'chunk' "
            "and chunk_id is null", [task.id]),
        "sources": dict(index.conn.execute(
            "select source, count(*) from labels where task_id = ? group by source "
            "order by source", [task.id])),
        "model_versions": [r["version"] for r in index.query(
            "select version from models where task_id = ? order by version", [task.id])],
        "predictions": index.scalar(
            "select count(*) from predictions where task_id = ?", [task.id]),
        "document_tags": index.scalar(
            "select count(*) from document_tags where task_id = ?", [task.id]),
        "options": task.options,
    })
    return info


def delete_task(index: Index, name: str) -> dict:
    """Delete a task with its labels, models (rows and folders), predictions and document
    tags. Documents and chunks stay. Returns what was deleted, counted."""
    row = index.task_row(name)
    task_id = row["id"]
    counted = {}
    for table in ("labels", "models", "predictions", "document_tags"):
        counted[table] = index.scalar(f"select count(*) from {table} where task_id = ?",
                                      [task_id])
    model_paths = [r["path"] for r in index.query(
        "select path from models where task_id = ?", [task_id])]
    with index.write("deleting a task") as db:
        for table in ("document_tags", "predictions", "labels"):
            db.execute(f"delete from {table} where task_id = ?", [task_id])
        db.execute("update tasks set active_model_id = null where id = ?", [task_id])
        db.execute("delete from models where task_id = ?", [task_id])
        db.execute("delete from tasks where id = ?", [task_id])
    root = index.path.resolve()
    folders = {index.models_dir / name}
    folders.update(index.path / p for p in model_paths if p)
    removed = []
    for folder in sorted(folders):
        resolved = folder.resolve()
        # Only folders inside the index: a models.path never leads us elsewhere.
        if resolved == root or root not in resolved.parents or not resolved.is_dir():
            continue
        shutil.rmtree(resolved, ignore_errors=True)
        removed.append(str(folder))
    counted["folders"] = removed
    return {"task": name, "deleted": counted}


__all__ = ["LEVELS", "parse_labels", "label_kind", "create_task", "list_tasks", "show_task",
           "label_counts", "delete_task"]
