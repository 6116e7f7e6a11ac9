"""The index schema, as sqlite-utils migrations: each runs once, in its own transaction.

Never edit a migration that has shipped; add a new one, written as usual::

    @migrations()
    def m004_something(db):
        db.execute("ALTER TABLE ...")

``migrations`` registers the functions without importing sqlite-utils, so that opening an
index that is up to date (every command but the first) costs no sqlite-utils import:
:func:`pending_names` reads ``_sqlite_migrations`` on a plain ``sqlite3`` connection, and
the sqlite-utils ``Migrations`` object that applies them is built only when one is pending.
``migrations.pending(db)`` / ``migrations.apply(db)`` work as on that object.
"""
from __future__ import annotations

import sqlite3

#: the sqlite-utils migration set, and the table it records applied migrations in
MIGRATION_SET = "doctagger"
MIGRATIONS_TABLE = "_sqlite_migrations"


class _Migrations:
    """The ``sqlite_utils.Migrations`` interface, with the sqlite-utils object built on
    first use; registering a migration (``@migrations()``) imports nothing."""

    def __init__(self, name: str):
        self.name = name
        self.registered: list[tuple[str, object, bool]] = []  # (name, function, transactional)
        self._real = None

    def __call__(self, *, name: str | None = None, transactional: bool = True):
        def inner(fn):
            migration_name = name or fn.__name__
            if migration_name in self.names:
                raise ValueError(f"migration '{migration_name}' is already registered")
            self.registered.append((migration_name, fn, transactional))
            self._real = None
            return fn
        return inner

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.registered]

    def sqlite_utils_migrations(self):
        """The ``sqlite_utils.Migrations`` holding every registered migration, in order."""
        if self._real is None:
            from doctagger.index import import_sqlite_utils

            real = import_sqlite_utils().Migrations(self.name)
            for name, fn, transactional in self.registered:
                real(name=name, transactional=transactional)(fn)
            self._real = real
        return self._real

    def __getattr__(self, attr):  # pending, apply, applied, ensure_migrations_table, ...
        if attr.startswith("__") or attr in ("name", "registered", "_real"):
            raise AttributeError(attr)
        return getattr(self.sqlite_utils_migrations(), attr)

    def __repr__(self):
        return f"<Migrations '{self.name}': [{', '.join(self.names)}]>"


migrations = _Migrations(MIGRATION_SET)


def pending_names(conn: sqlite3.Connection) -> list[str]:
    """Names of the registered migrations not applied to the database yet, read with plain
    SQL (what ``migrations.pending(db)`` answers, without sqlite-utils)."""
    if conn.execute("select 1 from sqlite_master where type = 'table' and name = ?",
                    [MIGRATIONS_TABLE]).fetchone() is None:
        return migrations.names
    applied = {name for (name,) in conn.execute(
        f"select name from [{MIGRATIONS_TABLE}] where migration_set = ?", [MIGRATION_SET])}
    return [name for name in migrations.names if name not in applied]


@migrations()
def m001_documents_and_chunks(db):
    db.execute("""
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,      -- absolute path, or 'import:<sha>' for imported text
            sha256 TEXT,
            size INTEGER,
            mtime_ns INTEGER,
            format TEXT,                    -- file suffix without the dot: pdf, epub, txt, ...
            source TEXT NOT NULL DEFAULT 'file',  -- file | import
            title TEXT,
            author TEXT,
            pages INTEGER,
            ocr_pages INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,           -- ok | failed | encrypted | needs_ocr | empty
            error TEXT,                     -- the reason, for anything but ok
            chunk_count INTEGER NOT NULL DEFAULT 0,
            ingested_at TEXT,
            seconds REAL
        )""")
    db.execute("CREATE INDEX idx_documents_sha256 ON documents(sha256)")
    db.execute("CREATE INDEX idx_documents_status ON documents(status)")
    db.execute("""
        CREATE TABLE pages (
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            page INTEGER NOT NULL,          -- 1-based
            text TEXT NOT NULL,             -- the page text chunk offsets point into
            width REAL,
            height REAL,
            ocr INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (document_id, page)
        )""")
    db.execute("""
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,           -- order in the document, from 0
            text TEXT NOT NULL,
            page INTEGER,                   -- 1-based page the chunk starts on
            page_end INTEGER,               -- page it ends on
            char_start INTEGER,             -- offset into pages.text of `page`
            char_end INTEGER,               -- offset into pages.text of `page_end` (exclusive)
            bbox TEXT,                      -- JSON [x0, y0, x1, y1] on `page`
            tokens INTEGER,                 -- tokens of the default tokenizer
            text_hash TEXT NOT NULL,        -- sha1 of the normalised text: re-attaches labels
            UNIQUE (document_id, seq)
        )""")
    db.execute("CREATE INDEX idx_chunks_text_hash ON chunks(text_hash)")
    db["chunks"].enable_fts(["text"], fts_version="FTS5", create_triggers=True,
                            tokenize="porter unicode61 remove_diacritics 2")


@migrations()
def m002_tasks_labels_models(db):
    db.execute("""
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            labels TEXT NOT NULL,           -- JSON list
            multi_label INTEGER NOT NULL DEFAULT 0,
            level TEXT NOT NULL DEFAULT 'chunk',
            description TEXT,
            options TEXT NOT NULL DEFAULT '{}',
            active_model_id INTEGER,
            created_at TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            target TEXT NOT NULL,           -- chunk | document
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            chunk_id INTEGER REFERENCES chunks(id) ON DELETE SET NULL,  -- NULL: orphaned
            text_hash TEXT,                 -- of the labelled chunk, to re-attach it
            text TEXT,                      -- the labelled text (spans point into it)
            value TEXT NOT NULL,            -- JSON
            source TEXT NOT NULL,           -- human | import | model-accepted
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""")
    db.execute("CREATE UNIQUE INDEX idx_labels_chunk ON labels(task_id, chunk_id) "
               "WHERE target = 'chunk' AND chunk_id IS NOT NULL")
    db.execute("CREATE UNIQUE INDEX idx_labels_document ON labels(task_id, document_id) "
               "WHERE target = 'document'")
    db.execute("CREATE INDEX idx_labels_document_id ON labels(document_id)")
    db.execute("""
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            path TEXT NOT NULL,             -- relative to the index folder
            base_model TEXT,
            method TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            data_fingerprint TEXT,
            metrics TEXT NOT NULL DEFAULT '{}',
            info TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            UNIQUE (task_id, version)
        )""")
    db.execute("""
        CREATE TABLE predictions (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
            value TEXT NOT NULL,            -- JSON
            score REAL NOT NULL,
            uncertainty REAL,
            review INTEGER NOT NULL DEFAULT 0,  -- 1: under --min-score, queued for review
            created_at TEXT NOT NULL,
            UNIQUE (model_id, chunk_id)
        )""")
    db.execute("CREATE INDEX idx_predictions_chunk ON predictions(chunk_id)")
    db.execute("CREATE INDEX idx_predictions_task_review ON predictions(task_id, review)")
    db.execute("""
        CREATE TABLE document_tags (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            score REAL NOT NULL,
            chunks TEXT NOT NULL DEFAULT '[]',   -- JSON: top supporting chunk ids
            pages TEXT NOT NULL DEFAULT '[]',    -- JSON: pages of those chunks
            extra TEXT NOT NULL DEFAULT '{}',    -- JSON: NER entity text, page, offsets
            created_at TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX idx_document_tags_task_label ON document_tags(task_id, label)")
    db.execute("CREATE INDEX idx_document_tags_document ON document_tags(document_id)")


@migrations()
def m003_prediction_scores(db):
    # Per-label probabilities of a prediction (JSON {label: p}, NULL when the model gives
    # none): document-level roll-ups aggregate them, and 'label --strategy uncertain'
    # explains a stored prediction by its margin.
    db.execute("ALTER TABLE predictions ADD COLUMN scores TEXT")


@migrations()
def m004_page_ocr_engine(db):
    # Which OCR engine read a page ('rapidocr', 'tesseract'; NULL when the page's own text
    # layer was read). Pages OCRed before this column existed were read by Tesseract, the
    # only engine then.
    db.execute("ALTER TABLE pages ADD COLUMN ocr_engine TEXT")
    db.execute("UPDATE pages SET ocr_engine = 'tesseract' WHERE ocr = 1")


@migrations()
def m005_document_predictions(db):
    # A model that reads a whole document (doctagger.document_predictions) predicts it as
    # one text; its document tags come from this prediction, not from a roll-up of chunks.
    db.execute("""
        CREATE TABLE document_predictions (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            value TEXT NOT NULL,            -- JSON
            score REAL NOT NULL,
            scores TEXT,                    -- JSON {label: probability}
            created_at TEXT NOT NULL,
            UNIQUE (model_id, document_id)
        )""")
