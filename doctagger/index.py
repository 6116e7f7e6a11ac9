"""The Index: one folder holding ``doctagger.db`` (SQLite, WAL) and ``models/``.

Reads go through small query methods here; each feature module (ingest, labels, tagging)
keeps its own writes, always inside ``with index.write():`` so that a killed process
leaves the database as it was before or after the whole unit of work.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from doctagger.errors import IndexLockedError, InvalidInputError, NotFoundError
from doctagger.hashing import now, text_hash  # noqa: F401 (re-exported)
from doctagger.migrations import migrations, pending_names

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_INDEX = ".doctagger"
ENV_INDEX = "DOCTAGGER_INDEX"
DB_NAME = "doctagger.db"
BUSY_TIMEOUT_MS = 60_000


def import_sqlite_utils():
    """sqlite-utils, imported on first need without pandas and numpy when nothing has
    imported them yet: it imports both when installed (datasets pulls them in; 0.2-0.4 s)
    only to map their types to column types, and doctagger writes plain values into tables
    its migrations created. A program that imported them first gets them as usual."""
    from doctagger.lightimports import import_without

    return import_without("sqlite_utils", "pandas", "numpy")


def resolve_index_path(value: str | os.PathLike | None = None) -> Path:
    """--index, else $DOCTAGGER_INDEX, else ./.doctagger."""
    return Path(value or os.environ.get(ENV_INDEX) or DEFAULT_INDEX)


class Index:
    """The index folder and its database.

    ``query`` / ``one`` / ``scalar`` and ``write()`` run on ``conn``, a plain ``sqlite3``
    connection, so commands that only read (and an ingest with nothing to do) never import
    sqlite-utils. ``db``, the sqlite-utils ``Database`` on the same connection, is built on
    first use: ``with index.write() as db:`` yields it.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = resolve_index_path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way (/dev/null, a path under a file), no rights
            raise InvalidInputError(
                f"cannot use {self.path} as the index folder ({exc.strerror or exc}); point "
                "--index (or DOCTAGGER_INDEX) at a folder you can write to") from exc
        self.db_path = self.path / DB_NAME
        if self.db_path.is_dir():
            raise InvalidInputError(f"{self.db_path} is a folder, not a database: point "
                                    "--index (or DOCTAGGER_INDEX) at another folder")
        conn = sqlite3.connect(str(self.db_path), timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
        # Driver autocommit: transactions are explicit (write() / db.atomic()), so no
        # implicit transaction ever holds the write lock behind our back.
        conn.isolation_level = None
        self.conn = conn
        self._savepoints = itertools.count(1)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            # As sqlite_utils.Database sets it: a REPLACE that deletes a row fires its
            # delete triggers (which keep chunks_fts in step).
            conn.execute("PRAGMA recursive_triggers = ON")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = wal")
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise InvalidInputError(
                f"{self.db_path} is not a doctagger index (SQLite: {exc}); point --index (or "
                "DOCTAGGER_INDEX) at another folder, or move that file away") from exc
        conn.execute("PRAGMA synchronous = NORMAL")
        if pending_names(conn):
            # Under the write lock, and checked again: two processes opening a new index
            # at the same moment must not both create the tables.
            with self.write("migrating the index") as db:
                if migrations.pending(db):
                    migrations.apply(db)

    # -- plumbing ---------------------------------------------------------------------
    @functools.cached_property
    def db(self) -> sqlite_utils.Database:
        """The sqlite-utils Database on ``conn``, built (and sqlite-utils imported) on first
        use."""
        return import_sqlite_utils().Database(self.conn)

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    def close(self) -> None:
        self.conn.close()

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
        concurrent writers queue on the busy timeout instead of failing. Nested, it is a
        savepoint of the open transaction. Yields ``db``."""
        conn = self.conn
        if conn.in_transaction:  # nested: a savepoint
            savepoint = f"doctagger_{next(self._savepoints)}"
            conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self.db
            except BaseException:
                # An error such as a RAISE(ROLLBACK) trigger can end the whole transaction,
                # savepoints included: then there is nothing left to undo.
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            else:
                conn.execute(f"RELEASE SAVEPOINT {savepoint}")
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
        """The rows of ``sql`` as dicts (a repeated column name gets ``_2``, ``_3``... as
        sqlite-utils names them)."""
        cursor = self.conn.execute(sql, params)
        if cursor.description is None:
            return []
        keys = _dedupe_keys([d[0] for d in cursor.description])
        return [dict(zip(keys, row)) for row in cursor]

    def one(self, sql: str, params=()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params=()):
        row = self.conn.execute(sql, params).fetchone()
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


def _dedupe_keys(keys: list[str]) -> list[str]:
    """Column names made unique as sqlite_utils.utils.dedupe_keys does: later repeats get
    ``_2``, ``_3``..., skipping names another column has."""
    taken = set(keys)
    if len(taken) == len(keys):
        return keys
    seen: set[str] = set()
    result = []
    for key in keys:
        if key in seen:
            new_key, suffix = key, 2
            while new_key in seen or new_key in taken:
                new_key = f"{key}_{suffix}"
                suffix += 1
            key = new_key
        seen.add(key)
        result.append(key)
    return result
