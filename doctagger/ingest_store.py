"""Writing one extracted document into the index: its row, pages and chunks in one
transaction, and its chunk labels re-attached by text hash.

A document that is extracted again keeps its row (so its document labels and id stay).
When its chunks come out exactly as before they are kept as they are, with their ids,
labels and predictions; otherwise they are replaced, its document tags (computed from the
old chunks) are dropped, and each chunk label is pointed at the first new chunk with the
same text hash that its task has not labelled yet. Labels that find none stay orphaned
(chunk_id NULL) with their text, which training still uses and `status` counts.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from doctagger.hashing import now
from doctagger.ingest_workers import Extracted

if TYPE_CHECKING:
    from doctagger.index import Index


def _document_fields(ex: Extracted) -> dict:
    return {"title": ex.title, "author": ex.author, "pages": ex.page_count,
            "ocr_pages": ex.ocr_pages, "status": ex.status, "error": ex.error,
            "chunk_count": len(ex.chunks), "ingested_at": now(), "seconds": ex.seconds}


_DOC_COLUMNS = ("path", "sha256", "size", "mtime_ns", "format", "source", "title", "author",
                "pages", "ocr_pages", "status", "error", "chunk_count", "ingested_at", "seconds")


def write_document(index: Index, fields: dict, ex: Extracted,
                   document_id: int | None = None) -> tuple[int, int, int]:
    """Store one extracted document in one transaction (nested as a savepoint when the
    caller has one open). ``fields`` holds the row's identity (path, sha256, size, ...).
    Returns (document id, labels re-attached, labels orphaned)."""
    row = {**fields, **_document_fields(ex)}
    values = [row[c] for c in _DOC_COLUMNS]
    reattached = orphaned = 0
    new = document_id is None
    with index.write("storing a document") as db:
        conn = db.conn
        if new:
            document_id = conn.execute(
                f"insert into documents ({', '.join(_DOC_COLUMNS)}) values "
                f"({', '.join('?' * len(_DOC_COLUMNS))})", values).lastrowid
            same = not ex.chunks
        else:
            conn.execute(f"update documents set {', '.join(c + ' = ?' for c in _DOC_COLUMNS)} "
                         f"where id = ?", values + [document_id])
            conn.execute("delete from pages where document_id = ?", [document_id])
            same = _same_chunks(index, document_id, ex.chunks)
        conn.executemany(
            "insert into pages (document_id, page, text, width, height, ocr, ocr_engine) "
            "values (?, ?, ?, ?, ?, ?, ?)",
            [(document_id, p.number, p.text, p.width, p.height, int(p.ocr),
              getattr(p, "ocr_engine", None) or ("unknown" if p.ocr else None))
             for p in ex.pages])
        if not same:
            before = 0
            if not new:
                before = index.scalar("select count(*) from labels where document_id = ? "
                                      "and target = 'chunk' and chunk_id is not null",
                                      [document_id])
                conn.execute("delete from chunks where document_id = ?", [document_id])
                conn.execute("delete from document_tags where document_id = ?", [document_id])
                conn.execute("delete from document_predictions where document_id = ?",
                             [document_id])
            conn.executemany(
                "insert into chunks (document_id, seq, text, page, page_end, char_start, "
                "char_end, bbox, tokens, text_hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(document_id, seq, c.text, c.page, c.page_end, c.char_start, c.char_end,
                  json.dumps(list(c.bbox)) if c.bbox else None, c.tokens, c.text_hash)
                 for seq, c in enumerate(ex.chunks)])
            if not new:
                reattached = reattach_labels(index, document_id)
                orphaned = max(0, (before or 0) - reattached)
    return document_id, reattached, orphaned


def _same_chunks(index: Index, document_id: int, chunks: list) -> bool:
    old = index.conn.execute("select text, page, char_start, char_end, tokens from chunks "
                             "where document_id = ? order by seq", [document_id]).fetchall()
    return old == [(c.text, c.page, c.char_start, c.char_end, c.tokens) for c in chunks]


def reattach_labels(index: Index, document_id: int) -> int:
    """Point the document's orphaned chunk labels at its chunks with the same text hash
    (the first free one for the label's task, in order). Returns how many were attached."""
    orphans = index.query("select id, task_id, text_hash from labels where document_id = ? "
                          "and target = 'chunk' and chunk_id is null and text_hash is not null "
                          "order by id", [document_id])
    if not orphans:
        return 0
    by_hash: dict[str, list[int]] = {}
    for c in index.query("select id, text_hash from chunks where document_id = ? order by seq",
                         [document_id]):
        by_hash.setdefault(c["text_hash"], []).append(c["id"])
    taken = {(r["task_id"], r["chunk_id"]) for r in index.query(
        "select task_id, chunk_id from labels where document_id = ? and chunk_id is not null",
        [document_id])}
    attached = 0
    for label in orphans:
        for chunk_id in by_hash.get(label["text_hash"], ()):
            if (label["task_id"], chunk_id) not in taken:
                index.conn.execute("update labels set chunk_id = ? where id = ?",
                                   [chunk_id, label["id"]])
                taken.add((label["task_id"], chunk_id))
                attached += 1
                break
    return attached
