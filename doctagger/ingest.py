"""Ingest: files and folders -> documents, pages and chunks in the index.

The main process finds the files, hashes them and decides what each needs (new, changed,
unchanged, moved, duplicate); worker processes extract and chunk (doctagger.extractors,
doctagger.chunking); the main process alone writes, each document atomically (in small
batches, a savepoint each), so a process killed at any moment leaves every document either
as it was or fully replaced, and a re-run completes the job without duplicates.
A worker that crashes or passes --max-seconds is killed and replaced; its file is recorded
as failed with the reason, and the run goes on.

Re-ingesting a changed document keeps its row (and so its document labels), replaces its
pages and chunks, and re-attaches its chunk labels to new chunks with the same text hash;
the others stay orphaned (chunk_id NULL) with their text, and `doctagger status` counts them.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from doctagger.chunking import DEFAULT_CHUNK_TOKENS, check_chunk_tokens
from doctagger.errors import InvalidInputError, NotFoundError
from doctagger.extractors import (OCR_MISSING, OCR_MISSING_OLD, OCR_MODES, OCR_OFF,
                                  ExtractOptions, extractor_for, one_line, supported_suffixes)
from doctagger.ingest_store import reattach_labels, write_document  # noqa: F401 (API)
from doctagger.ingest_workers import Extracted, Pool, process_file
from doctagger.ocr import ENGINE_CHOICES, default_threads, resolve_engine

if TYPE_CHECKING:
    from doctagger.index import Index

#: statuses that count as stored (not failures)
GOOD_STATUSES = ("ok", "empty")
#: what a run did with a file; "reextracted": same content extracted again (--force, or a
#: retry of a file that was not stored fully before: failed, encrypted, needs OCR)
ACTIONS = ("new", "changed", "reextracted", "unchanged", "moved", "duplicate")
#: exit code of `doctagger ingest` when some files could not be ingested
EXIT_SOME_FAILED = 3


@dataclass
class IngestOptions:
    ocr: str = "auto"
    ocr_engine: str = "auto"  # auto | rapidocr | tesseract (doctagger.ocr)
    ocr_language: str = "eng"
    ocr_dpi: int = 300
    passwords: tuple[str, ...] = ()
    workers: int | None = None  # None: os.cpu_count(); 0: in this process
    force: bool = False
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    max_pages: int | None = 5000
    max_seconds: float | None = 600.0
    max_image_mb: float | None = 128.0


@dataclass
class FileResult:
    """What happened to one file; `--json` prints these."""

    path: str
    action: str  # one of ACTIONS
    status: str  # ok | empty | needs_ocr | encrypted | failed
    error: str | None = None
    document_id: int | None = None
    pages: int | None = None
    chunks: int = 0
    ocr_pages: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    moved_from: str | None = None


@dataclass
class Summary:
    files: int = 0
    new: int = 0
    changed: int = 0
    reextracted: int = 0
    unchanged: int = 0
    moved: int = 0
    duplicate: int = 0
    failed: int = 0  # files that ended needs_ocr, encrypted or failed
    statuses: dict = field(default_factory=dict)
    pages: int = 0  # pages extracted in this run
    chunks: int = 0  # chunks written in this run
    ocr_pages: int = 0
    labels_reattached: int = 0
    labels_orphaned: int = 0
    seconds: float = 0.0
    workers: int = 0
    ocr_engine: str | None = None  # the engine that OCRs pages in this run, if any
    hint: str | None = None
    results: list[FileResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failed else 0

    def add(self, result: FileResult) -> None:
        self.results.append(result)
        self.files += 1
        self.statuses[result.status] = self.statuses.get(result.status, 0) + 1
        if result.status not in GOOD_STATUSES:
            self.failed += 1
        else:
            setattr(self, result.action, getattr(self, result.action) + 1)
        if result.action not in ("unchanged", "duplicate"):
            self.pages += result.pages or 0
            self.chunks += result.chunks
            self.ocr_pages += result.ocr_pages

    def to_dict(self) -> dict:
        data = asdict(self)
        data["results"] = [asdict(r) for r in self.results]
        data["pages_per_second"] = round(self.pages / self.seconds, 1) if self.seconds else None
        data["exit_code"] = self.exit_code
        return data


# -- finding and hashing files ------------------------------------------------------
def discover(paths: Iterable[str | os.PathLike], *, skip: Iterable[Path] = ()) -> list[Path]:
    """Absolute paths of the files to ingest: files given by name whatever their suffix,
    and in folders (recursively, not following links to folders, skipping hidden names)
    the files an extractor reads. Sorted, without repeats."""
    suffixes = {"." + s for s in supported_suffixes()}
    skip = {Path(p).resolve() for p in skip}
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise NotFoundError(f"{given}: no such file or folder")
        path = path.resolve()
        if path.is_file():
            found[str(path)] = path
            continue
        for file in _walk(str(path), suffixes, {str(p) for p in skip}):
            found[file] = Path(file)
    return [found[k] for k in sorted(found)]


def _walk(folder: str, suffixes: set[str], skip: set[str]):
    """Files under ``folder`` (a resolved path) with one of ``suffixes``, not hidden, not
    under ``skip``; links to folders are not followed, so every folder reached is already
    its own resolved path. ``os.scandir`` entries know their type without a stat call."""
    stack = [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = list(it)
        except OSError:  # an unreadable folder: nothing to ingest from it
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in skip:
                        stack.append(entry.path)
                elif os.path.splitext(name)[1].lower() in suffixes and entry.is_file():
                    yield entry.path
            except OSError:
                continue


def file_sha256(path: Path) -> str:
    import hashlib  # here: an unchanged re-ingest hashes nothing

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- deciding ------------------------------------------------------------------------
@dataclass
class _Job:
    path: Path
    action: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    document_id: int | None = None


def _decide(index: Index, files: list[Path], force: bool,
            retry: Callable[[dict], bool]) -> tuple[list[_Job], list[FileResult]]:
    """Jobs to extract, and the results of files that need no extraction. A file already
    in the index is extracted again when its content changed, with --force, or when
    ``retry(row)`` says this run can do better than the last (a password or OCR now)."""
    rows = index.query("select id, path, sha256, size, mtime_ns, status, error from documents "
                       "where source = 'file'")
    by_path = {r["path"]: r for r in rows}
    by_sha: dict[str, dict] = {}
    for r in rows:
        if r["sha256"] and r["status"] in GOOD_STATUSES:
            by_sha.setdefault(r["sha256"], r)
    jobs: list[_Job] = []
    done: list[FileResult] = []
    stat_updates, moves = [], []
    claimed: dict[str, str] = {}  # sha256 -> path that holds it in this run
    for path in files:
        key = str(path)
        try:
            st = path.stat()
        except OSError as exc:
            done.append(FileResult(key, "new", "failed", f"cannot read it: {one_line(exc)}"))
            continue
        job = _Job(path, "new", st.st_size, st.st_mtime_ns)
        row = by_path.get(key)
        again = row is not None and (force or retry(row))
        if row is not None:
            job.document_id = row["id"]
            if (not again and row["sha256"] and row["size"] == st.st_size
                    and row["mtime_ns"] == st.st_mtime_ns):  # git's stat shortcut
                claimed.setdefault(row["sha256"], key)
                done.append(_unchanged(row, key))
                continue
        try:
            job.sha256 = file_sha256(path)
        except OSError as exc:
            done.append(FileResult(key, "new", "failed", f"cannot read it: {one_line(exc)}",
                                    document_id=job.document_id))
            continue
        if row is not None:
            if row["sha256"] == job.sha256 and not again:
                stat_updates.append((st.st_size, st.st_mtime_ns, row["id"]))
                claimed.setdefault(job.sha256, key)
                done.append(_unchanged(row, key))
                continue
            job.action = "reextracted" if row["sha256"] == job.sha256 else "changed"
            jobs.append(job)
            continue
        if not st.st_size:  # every empty file has the same hash: each is its own failure
            jobs.append(job)
            continue
        if job.sha256 in claimed:
            done.append(FileResult(key, "duplicate", "ok", duplicate_of=claimed[job.sha256]))
            continue
        other = by_sha.get(job.sha256)
        if other is not None and other["path"] != key:
            if Path(other["path"]).exists():
                claimed[job.sha256] = other["path"]
                done.append(FileResult(key, "duplicate", other["status"],
                                       document_id=other["id"], duplicate_of=other["path"]))
                continue
            moves.append((key, st.st_size, st.st_mtime_ns, other["id"]))
            by_sha.pop(job.sha256)
            claimed[job.sha256] = key
            job.action, job.document_id = "moved", other["id"]
            result = FileResult(key, "moved", other["status"], document_id=other["id"],
                                moved_from=other["path"])
            if force:
                jobs.append(job)
            else:
                done.append(result)
            continue
        claimed[job.sha256] = key
        jobs.append(job)
    if stat_updates or moves:
        with index.write("recording moved and touched files") as db:
            db.conn.executemany("update documents set size = ?, mtime_ns = ? where id = ?",
                                stat_updates)
            db.conn.executemany("update documents set path = ?, size = ?, mtime_ns = ? "
                                "where id = ?", moves)
    return jobs, done


def _unchanged(row: dict, key: str) -> FileResult:
    return FileResult(key, "unchanged", row["status"], row["error"], document_id=row["id"])


#: phrases of the needs_ocr reasons that an engine available now may fix
_OCR_RETRY = (OCR_OFF, OCR_MISSING, OCR_MISSING_OLD, "cannot be OCRed:")


def _retry_rule(options: IngestOptions, engine) -> Callable[[dict], bool]:
    """Which unchanged files that were not stored fully are worth another try: encrypted
    ones when passwords are given, and those that waited for OCR when OCR is possible now.
    Broken files are not retried (their content has not changed); --force retries all."""
    def retry(row: dict) -> bool:
        if row["status"] == "encrypted":
            return bool(options.passwords)
        if row["status"] == "needs_ocr" and engine and options.ocr != "off":
            return any(why in (row["error"] or "") for why in _OCR_RETRY)
        return False
    return retry


def store_text_document(index: Index, text: str, *, title: str | None = None,
                        key: str | None = None,
                        chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> int:
    """Store a text that has no file behind it (an imported label's text) as a document:
    source 'import', path 'import:<sha256 of the text>' (or 'import:<key>'), one page
    holding the text as given, chunked like every document. The same text is stored once:
    the existing id is returned. Runs inside the caller's transaction when one is open."""
    from doctagger.chunking import chunk_pages
    from doctagger.extractors import ExtractedPage

    if not text or not text.strip():
        raise InvalidInputError("cannot store an empty text as a document")
    import hashlib

    sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    path = f"import:{key if key is not None else sha}"
    with index.write("storing an imported text"):
        row = index.one("select id, sha256 from documents where path = ?", [path])
        if row is not None and row["sha256"] == sha:
            return row["id"]
        page = ExtractedPage.from_text(1, text)
        ex = Extracted(status="ok", title=title, page_count=1, pages=[page],
                       chunks=chunk_pages([page], max_tokens=chunk_tokens))
        fields = {"path": path, "sha256": sha, "size": len(text), "mtime_ns": None,
                  "format": "txt", "source": "import"}
        document_id, _, _ = write_document(index, fields, ex, row["id"] if row else None)
        return document_id


# -- the run -------------------------------------------------------------------------
#: documents are written in small batches, each in one transaction (so each document is
#: atomic); a batch closes after this many seconds or documents
BATCH_SECONDS = 0.25
BATCH_DOCUMENTS = 200


def worker_count(options: IngestOptions) -> int:
    if options.workers is None:
        return os.cpu_count() or 1
    return max(0, options.workers)


def ingest(index: Index, paths: Iterable[str | os.PathLike], options: IngestOptions | None = None,
           *, on_start: Callable[[int], object] | None = None,
           progress: Callable[[FileResult], object] | None = None) -> Summary:
    """Ingest files and folders into the index and return the Summary. ``on_start(n)`` is
    told how many files will be extracted, ``progress(result)`` is called after each.
    Worker processes start only when there is something to extract: into an empty index,
    before the files are hashed (everything will be extracted), else after."""
    options = options or IngestOptions()
    started = time.monotonic()
    if options.ocr not in OCR_MODES:
        raise InvalidInputError(f"--ocr must be one of {', '.join(OCR_MODES)}")
    chunk_tokens = check_chunk_tokens(options.chunk_tokens)
    engine, unavailable = None, None
    if options.ocr != "off":
        engine, unavailable = resolve_engine(options.ocr_engine, options.ocr_language)
    elif options.ocr_engine not in ENGINE_CHOICES:
        raise InvalidInputError(f"--ocr-engine must be one of {', '.join(ENGINE_CHOICES)}")
    if options.ocr == "force" and not engine:
        raise InvalidInputError(f"--ocr force needs an OCR engine: {unavailable}")
    if options.ocr_engine != "auto" and not engine and options.ocr != "off":
        raise InvalidInputError(f"--ocr-engine {options.ocr_engine}: {unavailable}")
    files = discover(paths, skip=[index.path])
    pool = None
    if files and worker_count(options) and index.scalar("select 1 from documents limit 1") is None:
        # A first ingest extracts every file: start the workers now, so that they import
        # PyMuPDF and the tokenizer while this process hashes the files.
        pool = Pool(min(worker_count(options), len(files)), options.max_seconds)
    try:  # whatever happens from here on, no worker outlives the run
        jobs, done = _decide(index, files, options.force, _retry_rule(options, engine))
        summary = Summary()
        for result in done:
            summary.add(result)
        summary.workers = min(worker_count(options), len(jobs))
        summary.ocr_engine = engine.name if engine else None
        xopts = ExtractOptions(ocr=options.ocr, ocr_language=options.ocr_language,
                               ocr_dpi=options.ocr_dpi,
                               tessdata=engine.tessdata if engine else None,
                               ocr_engine=engine.name if engine else None,
                               ocr_threads=default_threads(max(1, summary.workers)),
                               ocr_unavailable=unavailable,
                               passwords=tuple(options.passwords), max_pages=options.max_pages,
                               max_seconds=options.max_seconds,
                               max_image_mb=options.max_image_mb)
        if pool is not None and not summary.workers:
            pool.close(kill=True)
            pool = None
        if on_start:
            on_start(len(jobs))
        tasks = [(job, (str(job.path), extractor_for(job.path), xopts, chunk_tokens))
                 for job in jobs]
        if summary.workers > 1:  # largest first: no worker is left with a big one at the end
            tasks.sort(key=lambda task: -task[0].size)
        if pool is None and tasks and summary.workers:
            pool = Pool(summary.workers, options.max_seconds)
        results = pool.run(tasks) if pool and tasks else _in_process(tasks)
        _write_all(index, results, summary, progress)
    finally:
        if pool is not None:
            pool.close(kill=True)
    _settle_duplicates(summary)
    waiting = sum(1 for r in summary.results if r.status == "needs_ocr")
    if waiting and options.ocr != "off" and not engine:
        summary.hint = (f"{waiting} document{'s' if waiting > 1 else ''} "
                        f"need{'s' if waiting == 1 else ''} OCR: {unavailable}")
    summary.results.sort(key=lambda r: r.path)
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _in_process(tasks):
    for job, args in tasks:
        yield None  # extraction is about to take a while: commit first
        yield job, process_file(*args)


def _write_all(index: Index, results, summary: Summary, progress) -> None:
    """Write results as they come, in batches: one transaction per batch, a savepoint per
    document. A batch is committed whenever no result is ready (``None`` from the
    results), so the write lock is never held while a file is being extracted."""
    batch, opened, count = None, 0.0, 0
    try:
        for item in results:
            if item is None:  # the workers are busy: commit rather than hold the lock
                if batch is not None:
                    batch, closing = None, batch
                    closing.__exit__(None, None, None)
                continue
            job, ex = item
            if batch is None:
                batch = index.write("storing documents")
                batch.__enter__()
                opened, count = time.monotonic(), 0
            result = _store(index, job, ex, summary)
            count += 1
            summary.add(result)
            if progress:
                progress(result)
            if count >= BATCH_DOCUMENTS or time.monotonic() - opened >= BATCH_SECONDS:
                batch, closing = None, batch
                closing.__exit__(None, None, None)
    except BaseException as exc:
        if batch is not None:
            batch, closing = None, batch
            closing.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if batch is not None:
        batch.__exit__(None, None, None)


def _settle_duplicates(summary: Summary) -> None:
    """A duplicate of a file first seen in this run ends as that file did."""
    by_path = {r.path: r for r in summary.results}
    for r in summary.results:
        if r.action == "duplicate" and r.document_id is None and r.duplicate_of in by_path:
            first = by_path[r.duplicate_of]
            if first.status != r.status:
                summary.statuses[r.status] -= 1
                summary.statuses[first.status] = summary.statuses.get(first.status, 0) + 1
                if first.status not in GOOD_STATUSES:
                    summary.duplicate -= 1
                    summary.failed += 1
            r.status, r.error, r.document_id = first.status, first.error, first.document_id
    summary.statuses = {k: v for k, v in summary.statuses.items() if v}


def _store(index: Index, job: _Job, ex: Extracted, summary: Summary) -> FileResult:
    fields = {"path": str(job.path), "sha256": job.sha256, "size": job.size,
              "mtime_ns": job.mtime_ns, "format": job.path.suffix.lower().lstrip(".") or None,
              "source": "file"}
    document_id, reattached, orphaned = write_document(index, fields, ex, job.document_id)
    summary.labels_reattached += reattached
    summary.labels_orphaned += orphaned
    return FileResult(str(job.path), job.action, ex.status, ex.error, document_id,
                      ex.page_count, len(ex.chunks), ex.ocr_pages, ex.seconds, ex.warnings)


