"""Labels in the index: save, delete, list, and turn into training examples.

Every label goes through the task type's ``validate`` before it is written. A label is on a
chunk (target 'chunk') or on a whole document (target 'document'); re-saving replaces the
previous value for the same item. Callers group writes with ``index.write()``; each
function here also works on its own (it opens its own transaction when none is open).
"""
from __future__ import annotations

import json
from typing import Any

from doctagger.errors import InvalidInputError, NotFoundError
from doctagger.index import Index, now, text_hash
from doctagger.tasktypes import Example, Task

SOURCES = ("human", "import", "model-accepted")


def validate_value(task: Task, value: Any) -> Any:
    from doctagger.plugins import get_task_type

    return get_task_type(task.type).validate(task, value)


def save_label(index: Index, task: Task, value: Any, *, chunk_id: int | None = None,
               document_id: int | None = None, source: str = "human",
               validated: bool = False) -> int:
    """Save (insert or replace) the label of one chunk, or of one document when only
    ``document_id`` is given. Returns the label id."""
    if source not in SOURCES:
        raise InvalidInputError(f"label source must be one of {', '.join(SOURCES)}")
    if not validated:
        value = validate_value(task, value)
    stamp = now()
    with index.write("saving a label") as db:
        if chunk_id is not None:
            chunk = index.one("select id, document_id, text, text_hash from chunks where id = ?",
                              [chunk_id])
            if chunk is None:
                raise NotFoundError(f"no chunk {chunk_id} in the index")
            existing = index.one("select id from labels where task_id = ? and target = 'chunk' "
                                 "and chunk_id = ?", [task.id, chunk_id])
            row = {"task_id": task.id, "target": "chunk", "document_id": chunk["document_id"],
                   "chunk_id": chunk_id, "text_hash": chunk["text_hash"], "text": chunk["text"],
                   "value": json.dumps(value, ensure_ascii=False), "source": source,
                   "updated_at": stamp}
        else:
            if document_id is None:
                raise InvalidInputError("a label needs a chunk or a document")
            if index.one("select id from documents where id = ?", [document_id]) is None:
                raise NotFoundError(f"no document {document_id} in the index")
            existing = index.one("select id from labels where task_id = ? and "
                                 "target = 'document' and document_id = ?",
                                 [task.id, document_id])
            row = {"task_id": task.id, "target": "document", "document_id": document_id,
                   "chunk_id": None, "text_hash": None, "text": None,
                   "value": json.dumps(value, ensure_ascii=False), "source": source,
                   "updated_at": stamp}
        if existing:
            db["labels"].update(existing["id"], row)
            return existing["id"]
        row["created_at"] = stamp
        return db["labels"].insert(row).last_pk


def delete_label(index: Index, label_id: int) -> None:
    with index.write("deleting a label") as db:
        db.execute("delete from labels where id = ?", [label_id])


def labels_of(index: Index, task: Task) -> list[dict]:
    rows = index.query("select * from labels where task_id = ? order by id", [task.id])
    for r in rows:
        r["value"] = json.loads(r["value"])
    return rows


def examples(index: Index, task: Task) -> list[Example]:
    """The task's labelled examples, for training and evaluation.

    - chunk-level task: one example per labelled chunk; orphaned chunk labels (whose chunk
      changed on re-ingest) are used with the text they were given on;
    - document-level task: one example per labelled document, its text the document's
      chunks joined in order (the task type decides how to cut it to its window).
    Examples carry ``group`` = document id so a split never divides a document.
    """
    out: list[Example] = []
    if task.level == "document":
        rows = index.query("select document_id, value from labels where task_id = ? and "
                           "target = 'document' order by id", [task.id])
        for r in rows:
            parts = [c["text"] for c in index.query(
                "select text from chunks where document_id = ? order by seq", [r["document_id"]])]
            out.append(Example(text="\n".join(parts), value=json.loads(r["value"]),
                               group=r["document_id"], document_id=r["document_id"],
                               parts=parts))
        return out
    rows = index.query(
        "select l.chunk_id, l.document_id, l.value, coalesce(c.text, l.text) as text "
        "from labels l left join chunks c on c.id = l.chunk_id "
        "where l.task_id = ? and l.target = 'chunk' order by l.id", [task.id])
    for r in rows:
        if r["text"] is None:
            continue
        out.append(Example(text=r["text"], value=json.loads(r["value"]), group=r["document_id"],
                           chunk_id=r["chunk_id"], document_id=r["document_id"]))
    return out


__all__ = ["save_label", "delete_label", "labels_of", "examples", "validate_value",
           "text_hash", "SOURCES"]
