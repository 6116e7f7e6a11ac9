"""Import labels from a CSV, JSONL or CoNLL file into a task, all or nothing.

The file layer (:mod:`doctagger.formats`) reads and checks the file; this module decides
what each record labels, and writes everything in ONE transaction: a bad line anywhere
(malformed, an unknown label, a path that matches no document) is reported with its line
number and nothing from the file is imported. The matching rules are in docs/labels.md:

- chunk-level tasks, ``text`` records: every chunk whose text equals the record's text
  (white space folded, as :func:`doctagger.index.text_hash` does) gets the label. Otherwise
  the text becomes an imported document of its own (``doctagger.ingest.store_text_document``)
  and each of its chunks gets the label; NER spans are moved into each chunk's coordinates,
  a span that crosses a chunk boundary is cut at it (counted in a warning);
- document-level tasks: ``path`` records name a document by path (exact, relative to the
  import file's folder, relative to the current folder); failing those, when the path
  names an existing file, by that file's content (sha256) and nothing else: ingest skips a
  copy of an ingested file, so its path is not in the index, but its content is (a warning
  says "matched by content"), and a unique path suffix could name another document with
  the same file name. Only when no such file exists: a unique path suffix, or a sha256.
  ``text`` records label the imported document made of the text.
- a CoNLL record whose entity type the task refuses is reported on the line of that
  entity's first token (:func:`doctagger.formats.base.problem_line`), not the sentence's
  first line.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from doctagger.errors import DoctaggerError, ImportFormatError, InvalidInputError, \
    NotFoundError
from doctagger.formats.base import problem_line
from doctagger.index import Index, text_hash
from doctagger.labels import SOURCES, save_label
from doctagger.tasks import label_kind

MAX_LISTED = 5  # line numbers listed in a warning


@dataclass
class ImportResult:
    """What an import did (or, with ``dry_run``, would do)."""

    task: str
    path: str
    format: str | None = None
    encoding: str = "utf-8"
    scheme: str | None = None  # CoNLL tagging scheme detected
    records: int = 0  # records read from the file
    labels: int = 0  # distinct chunks/documents labelled
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    documents_created: int = 0
    skipped: int = 0  # records left out on purpose (Prodigy reject/ignore)
    duplicates: int = 0  # records repeating an earlier record's label for the same item
    conflicts: int = 0  # records relabelling an item an earlier record labelled otherwise
    spans_cut: int = 0  # records with an NER span cut at a chunk boundary
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class _DryRun(Exception):
    """Raised at the end of a dry run to roll the transaction back."""


def import_labels(index: Index, task_name: str, path, *, fmt: str = "auto",
                  separator: str = "|", source: str = "import", dry_run: bool = False,
                  progress: Callable[[list], Iterable] | None = None) -> ImportResult:
    """Import the label file ``path`` into the task ``task_name``.

    ``fmt``: auto, csv, tsv, jsonl or conll. ``separator``: between the labels of one CSV
    cell for multi-label tasks. ``source``: recorded on each label. ``dry_run``: do all the
    work and checks, then roll back. ``progress``: wraps the list of records for a
    progress bar. Raises ImportFormatError (with the line) for any bad record.
    """
    from doctagger.formats import read_labels
    from doctagger.plugins import get_task_type

    if source not in SOURCES:
        raise InvalidInputError(f"label source must be one of {', '.join(SOURCES)}")
    task = index.task(task_name)
    task_type = get_task_type(task.type)
    kind = label_kind(task, task_type)
    records = read_labels(path, fmt, kind=kind, multi_label_separator=separator)
    result = ImportResult(task=task.name, path=str(path), format=records.format,
                          encoding=records.encoding, scheme=records.scheme,
                          records=len(records), skipped=records.skipped, dry_run=dry_run,
                          warnings=list(records.warnings))
    run = _Import(index, task, task_type, kind, Path(path), source, result)
    try:
        with index.write("importing labels"):
            last_document = index.scalar("select coalesce(max(id), 0) from documents")
            for record in (progress(records) if progress else records):
                run.add(record)
            run.finish()
            result.documents_created = index.scalar(
                "select count(*) from documents where id > ?", [last_document])
            if dry_run:
                raise _DryRun()
    except _DryRun:
        pass
    return result


class _Import:
    def __init__(self, index: Index, task, task_type, kind: str, path: Path, source: str,
                 result: ImportResult):
        self.index = index
        self.task = task
        self.task_type = task_type
        self.kind = kind
        self.path = path
        self.source = source
        self.result = result
        self.before: dict[tuple, Any] = {}  # item -> its value before the import (None: none)
        self.seen: dict[tuple, tuple[int, Any]] = {}  # item -> (line, value) from this file
        self.stored: dict[str, int] = {}  # text hash -> document stored by this import
        self.conflict_lines: list[tuple[int, int]] = []  # (earlier line, later line), once
        self.conflict_records: set[int] = set()  # lines of the records that conflict
        self.duplicate_records: set[int] = set()
        self.cut_lines: list[int] = []
        self.copies: list[tuple[int, str, str]] = []  # (line, path given, document's path)
        self.line = 0  # the line of the record being added

    # -- one record ----------------------------------------------------------------------
    def add(self, record) -> None:
        self.line = record.line
        try:
            for chunk_id, document_id, value in self._targets(record):
                try:
                    value = self.task_type.validate(self.task, value)
                except DoctaggerError as exc:
                    # a CoNLL sentence: the line of the token whose tag is refused
                    line = problem_line(record,
                                        lambda v: self.task_type.validate(self.task, v))
                    raise ImportFormatError(self.path, line, str(exc)) from None
                self._save(record.line, chunk_id, document_id, value)
        except ImportFormatError:
            raise
        except DoctaggerError as exc:
            raise ImportFormatError(self.path, record.line, str(exc)) from None

    def _targets(self, record) -> list[tuple[int | None, int | None, Any]]:
        if self.task.level == "document":
            if record.path:
                return [(None, doc, record.value) for doc in self._documents(record.path)]
            return [(None, self._store(record.text, record), record.value)]
        if record.text is None:
            raise InvalidInputError(
                f"this record names a document ({record.path}) but task '{self.task.name}' "
                "labels chunks; give the passage's text, or use a document-level task")
        chunks = self.index.query("select id, text from chunks where text_hash = ? order by id",
                                  [text_hash(record.text)])
        if not chunks:
            document_id = self._store(record.text, record)
            chunks = self.index.query("select id, text from chunks where document_id = ? "
                                      "order by seq", [document_id])
            if not chunks:
                raise InvalidInputError("the text gave no chunks when stored; check that it "
                                        "is not empty")
            if self.kind == "spans":
                return self._spans_to_chunks(record, chunks, in_order=True)
        if self.kind != "spans":
            return [(c["id"], None, record.value) for c in chunks]
        return self._spans_to_chunks(record, chunks, in_order=False)

    def _spans_to_chunks(self, record, chunks, *, in_order: bool) -> list[tuple[int, None, list]]:
        """The record's spans in each chunk's coordinates. ``in_order``: the chunks are the
        consecutive (maybe overlapping) parts of the record's text; otherwise each chunk's
        text equals the whole record text up to white space."""
        source = _NonSpace(record.text)
        out, start_from, cut = [], 0, False
        for chunk in chunks:
            target = _NonSpace(chunk["text"])
            at = source.chars.find(target.chars, start_from) if in_order else 0
            if at < 0 or not target.chars:
                raise InvalidInputError("could not find a chunk's text in the record's text, "
                                        "so its spans cannot be placed; import it as jsonl "
                                        "with one record per passage")
            start_from = at + 1
            spans = []
            for span in record.value:
                a, b = source.index(span["start"]), source.index(span["end"])
                lo, hi = max(a, at), min(b, at + len(target.chars))
                if lo >= hi:
                    continue
                if (lo, hi) != (a, b):
                    cut = True
                spans.append({"start": target.positions[lo - at],
                              "end": target.positions[hi - at - 1] + 1,
                              "label": span["label"]})
            out.append((chunk["id"], None, spans))
        if cut:
            self.result.spans_cut += 1
            self.cut_lines.append(record.line)
        return out

    def _store(self, text: str, record) -> int:
        from doctagger.ingest import store_text_document

        key = text_hash(text)
        if key not in self.stored:
            title = record.meta.get("title") if isinstance(record.meta.get("title"), str) else None
            self.stored[key] = store_text_document(self.index, text, title=title)
        return self.stored[key]

    def _documents(self, ref: str) -> list[int]:
        """Documents named by a path record (see the module docstring for the order)."""
        index = self.index
        candidates = [ref]
        plain = Path(ref.replace("\\", "/")).expanduser()
        for base in (self.path.parent, Path.cwd()):
            try:
                candidates.append(str((base / plain).resolve()))
            except OSError:
                pass
        for candidate in candidates:
            row = index.one("select id from documents where path = ?", [candidate])
            if row:
                return [row["id"]]
        # A file that exists decides by its content: a path suffix must not pick another
        # document that merely has the same name (a copy ingest skipped would be mislabelled).
        existing = self._existing_file(candidates)
        if existing is not None:
            rows = self._same_content(existing)
            if rows:
                self.copies.append((self.line, ref, rows[0]["path"]))
                return [r["id"] for r in rows]
            raise NotFoundError(f"no document in the index matches the path {ref!r}; ingest "
                                f"it first: the file {existing} is in the index neither by "
                                "its path nor by its content")
        suffix = "/" + str(plain).lstrip("/")
        if str(plain) not in (".", ""):
            rows = index.query("select id, path from documents where substr(path, -?) = ? "
                               "order by id limit 3", [len(suffix), suffix])
            if len(rows) == 1:
                return [rows[0]["id"]]
            if rows:
                raise InvalidInputError(
                    f"the path {ref!r} matches several documents ({rows[0]['path']}, "
                    f"{rows[1]['path']}, ...); give more of the path")
        if re.fullmatch(r"[0-9a-fA-F]{8,64}", ref):
            digest = ref.lower()
            if len(digest) == 64:
                rows = index.query("select id from documents where sha256 = ? order by id",
                                   [digest])
            else:
                rows = index.query("select id from documents where substr(sha256, 1, ?) = ? "
                                   "order by id limit 2", [len(digest), digest])
                if len(rows) > 1:
                    raise InvalidInputError(f"the sha256 prefix {ref!r} matches several "
                                            "documents; give more of it")
            if rows:
                return [r["id"] for r in rows]
        raise NotFoundError(f"no document in the index matches the path {ref!r}; ingest it "
                            "first, or write its path as 'doctagger docs' lists it (or its "
                            "sha256)")

    @staticmethod
    def _existing_file(candidates: list[str]) -> Path | None:
        """The first candidate that is an existing file: relative to the import file's
        folder, to the current folder, then as given. None when there is none."""
        for candidate in candidates[1:] + candidates[:1]:
            path = Path(candidate).expanduser()
            try:
                if path.is_file():
                    return path
            except OSError:
                continue
        return None

    def _same_content(self, path: Path) -> list[dict]:
        """The documents whose content (sha256, as ingest hashes files) equals the file
        ``path``: a file that ingest skipped as a duplicate of another path. [] when none
        (or the file cannot be read)."""
        from doctagger.ingest import file_sha256

        try:
            digest = file_sha256(path)
        except OSError:
            return []
        return self.index.query("select id, path from documents where sha256 = ? "
                                "order by id", [digest])

    def _save(self, line: int, chunk_id: int | None, document_id: int | None, value) -> None:
        key = ("chunk", chunk_id) if chunk_id is not None else ("document", document_id)
        first = key not in self.seen
        if not first:  # counted per record: one text may match many chunks
            first_line, earlier = self.seen[key]
            if earlier == value:
                if line not in self.duplicate_records:
                    self.duplicate_records.add(line)
                    self.result.duplicates += 1
                return
            if line not in self.conflict_records:
                self.conflict_records.add(line)
                self.result.conflicts += 1
            if (first_line, line) not in self.conflict_lines:
                self.conflict_lines.append((first_line, line))
        else:
            if chunk_id is not None:
                row = self.index.one("select value from labels where task_id = ? and "
                                     "target = 'chunk' and chunk_id = ?",
                                     [self.task.id, chunk_id])
            else:
                row = self.index.one("select value from labels where task_id = ? and "
                                     "target = 'document' and document_id = ?",
                                     [self.task.id, document_id])
            self.before[key] = json.loads(row["value"]) if row else None
        self.seen[key] = (line, value)
        if first and self.before[key] is not None and self.before[key] == value:
            return  # the index already holds this label: keep its source and time
        save_label(self.index, self.task, value, chunk_id=chunk_id, document_id=document_id,
                   source=self.source, validated=True)

    # -- the summary ---------------------------------------------------------------------
    def finish(self) -> None:
        result = self.result
        for key, (_, value) in self.seen.items():
            before = self.before[key]
            if before is None:
                result.new += 1
            elif before == value:
                result.unchanged += 1
            else:
                result.updated += 1
        result.labels = len(self.seen)
        name = str(self.path)
        if self.conflict_lines:
            shown = ", ".join(f"line {b} (after line {a})"
                              for a, b in self.conflict_lines[:MAX_LISTED])
            more = ", ..." if len(self.conflict_lines) > MAX_LISTED else ""
            result.warnings.append(
                f"{name}: {len(self.conflict_records)} record(s) give a different label to an "
                f"item an earlier line labelled; the later line wins: {shown}{more}. "
                "Check these labels")
        if self.copies:
            shown = "; ".join(f"{ref} is a copy of {path} (line {line})"
                              for line, ref, path in self.copies[:MAX_LISTED])
            more = "; ..." if len(self.copies) > MAX_LISTED else ""
            result.warnings.append(f"{name}: matched by content: {shown}{more}")
        if self.cut_lines:
            shown = ", ".join(map(str, self.cut_lines[:MAX_LISTED]))
            more = ", ..." if len(self.cut_lines) > MAX_LISTED else ""
            result.warnings.append(
                f"{name}: the text of {len(self.cut_lines)} record(s) became several chunks "
                f"and some entities crossed a chunk boundary; they were cut there (lines "
                f"{shown}{more})")


class _NonSpace:
    """A text's non-space characters and where each one is, to move character offsets
    between two texts that differ only in white space."""

    def __init__(self, text: str):
        self.positions = [i for i, ch in enumerate(text) if not ch.isspace()]
        self.chars = "".join(text[i] for i in self.positions)

    def index(self, offset: int) -> int:
        """How many non-space characters lie before ``offset``."""
        from bisect import bisect_left

        return bisect_left(self.positions, offset)


__all__ = ["ImportResult", "import_labels"]
