"""The Index: one folder holding ``doctagger.db`` (SQLite, WAL) and ``models/``.

Reads go through small query methods here; each feature module (ingest, labels, tagging)
keeps its own writes, always inside ``with index.write():`` so that a killed process
leaves the database as it was before or after the whole unit of work.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Iterator

import sqlite_utils

from doctagger.errors import IndexLockedError, NotFoundError
from doctagger.hashing import now, text_hash  # noqa: F401 (re-exported)
from doctagger.migrations import migrations

DEFAULT_INDEX = ".doctagger"
ENV_INDEX = "DOCTAGGER_INDEX"
DB_NAME = "doctagger.db"
BUSY_TIMEOUT_MS = 60_000


def resolve_index_path(value: str | os.PathLike | None = None) -> Path:
    """--index, else $DOCTAGGER_INDEX, else ./.doctagger."""
    return Path(value or os.environ.get(ENV_INDEX) or DEFAULT_INDEX)


class Index:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = resolve_index_path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.db_path = self.path / DB_NAME
        conn = sqlite3.connect(str(self.db_path), timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
        # Driver autocommit: transactions are explicit (write() / db.atomic()), so no
        # implicit transaction ever holds the write lock behind our back.
        conn.isolation_level = None
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        self.db = sqlite_utils.Database(conn)
        if self.db.journal_mode != "wal":
            self.db.enable_wal()
        conn.execute("PRAGMA synchronous = NORMAL")
        if migrations.pending(self.db):
            # Under the write lock, and checked again: two processes opening a new index
            # at the same moment must not both create the tables.
            with self.write("migrating the index"):
                if migrations.pending(self.db):
                    migrations.apply(self.db)

    # -- plumbing ---------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def _locked(self, what: str):
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise IndexLockedError(
                    f"the index {self.path} stayed locked by another doctagger process "
                    f"while {what}; wait for it to finish and run this again") from exc
            raise

    @contextlib.contextmanager
    def write(self, what: str = "writing") -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so
        concurrent writers queue on the busy timeout instead of failing."""
        conn = self.db.conn
        if conn.in_transaction:  # nested: a savepoint
            with self.db.atomic():
                yield self.db
            return
        with self._locked(what):
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            with self._locked(what):
                conn.execute("COMMIT")

    def query(self, sql: str, params=()) -> list[dict]:
        return list(self.db.query(sql, params))

    def one(self, sql: str, params=()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params=()):
        row = self.db.execute(sql, params).fetchone()
        return row[0] if row else None

    # -- documents and chunks ---------------------------------------------------------
    def document(self, ref: str | int) -> dict:
        """A document by id, path (as given or resolved), file name, or sha256 prefix."""
        ref_s = str(ref)
        row = None
        if ref_s.isdigit():
            row = self.one("select * from documents where id = ?", [int(ref_s)])
        if row is None:
            candidates = [ref_s]
            with contextlib.suppress(OSError):
                candidates.append(str(Path(ref_s).expanduser().resolve()))
            for candidate in candidates:
                row = self.one("select * from documents where path = ?", [candidate])
                if row:
                    break
        if row is None and re.fullmatch(r"[0-9a-f]{8,64}", ref_s):
            rows = self.query("select * from documents where sha256 like ? limit 2", [ref_s + "%"])
            row = rows[0] if len(rows) == 1 else None
        if row is None:
            rows = self.query("select * from documents where path like ? limit 2",
                              ["%/" + ref_s.lstrip("/")])
            row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise NotFoundError(f"no document '{ref}' in the index; list them with 'doctagger docs'")
        return row

    def chunks(self, document_id: int) -> list[dict]:
        return self.query("select * from chunks where document_id = ? order by seq", [document_id])

    def counts(self) -> dict:
        def count(sql):
            return self.scalar(sql) or 0
        return {
            "documents": count("select count(*) from documents"),
            "failed": count("select count(*) from documents where status != 'ok'"),
            "pages": count("select coalesce(sum(pages), 0) from documents"),
            "chunks": count("select count(*) from chunks"),
            "tasks": count("select count(*) from tasks"),
            "labels": count("select count(*) from labels"),
            "orphaned_labels": count(
                "select count(*) from labels where target = 'chunk' and chunk_id is null"),
            "models": count("select count(*) from models"),
            "predictions": count("select count(*) from predictions"),
            "document_tags": count("select count(*) from document_tags"),
        }

    # -- search -------------------------------------------------------------------------
    def search(self, text: str | None, *, limit: int = 20, where: str = "",
               params: list | None = None) -> list[dict]:
        """Chunks matching ``text`` (FTS5, best first, with a snippet), optionally narrowed by
        an extra SQL condition on ``chunks c`` / ``documents d``."""
        params = list(params or [])
        extra = f" and ({where})" if where else ""
        if not text:
            sql = (f"select c.id as chunk_id, c.document_id, d.path, d.title, c.page, c.seq, "
                   f"substr(c.text, 1, 160) as snippet, null as rank "
                   f"from chunks c join documents d on d.id = c.document_id "
                   f"where 1 {extra} order by c.document_id, c.seq limit ?")
            return self.query(sql, params + [limit])
        sql = (f"select c.id as chunk_id, c.document_id, d.path, d.title, c.page, c.seq, "
               f"snippet(chunks_fts, 0, '[', ']', '…', 12) as snippet, chunks_fts.rank as rank "
               f"from chunks_fts join chunks c on c.id = chunks_fts.rowid "
               f"join documents d on d.id = c.document_id "
               f"where chunks_fts match ? {extra} order by chunks_fts.rank limit ?")
        try:
            return self.query(sql, [text] + params + [limit])
        except sqlite3.OperationalError:
            # Not valid FTS5 syntax (a stray quote, a hyphen): search the words literally.
            return self.query(sql, [_escape_fts(text)] + params + [limit])

    # -- tasks --------------------------------------------------------------------------
    def task_row(self, name: str) -> dict:
        row = self.one("select * from tasks where name = ?", [name])
        if row is None:
            known = ", ".join(r["name"] for r in self.query("select name from tasks order by name"))
            hint = f" (tasks: {known})" if known else "; create one with 'doctagger tasks create'"
            raise NotFoundError(f"no task '{name}' in the index{hint}")
        return row

    def task(self, name: str):
        """The task as a doctagger.tasktypes.Task."""
        from doctagger.tasktypes import Task

        row = self.task_row(name)
        return Task(id=row["id"], name=row["name"], type=row["type"],
                    labels=json.loads(row["labels"]), multi_label=bool(row["multi_label"]),
                    level=row["level"], description=row["description"],
                    options=json.loads(row["options"] or "{}"))


def _escape_fts(text: str) -> str:
    words = re.findall(r"\w+", text)
    return " ".join(f'"{w}"' for w in words) or '""'
