"""The worker side of ingest: extract and chunk one file without ever raising, and a pool
of worker processes with a hard time limit.

A worker that crashes (MuPDF can, on a damaged file) or hangs past --max-seconds is killed
and replaced, and its file is recorded as failed with the reason; the run goes on. Workers
are forked on Linux (cheap: the main process has not imported PyMuPDF) and spawned
elsewhere. The main process alone writes to the index.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from doctagger.extractors import (ExtractionError, ExtractOptions, one_line,
                                  supported_suffixes, time_limit_reason)


@dataclass
class Extracted:
    """A file extracted and chunked (or the reason it could not be), as a worker returns it."""

    status: str
    error: str | None = None
    title: str | None = None
    author: str | None = None
    page_count: int | None = None
    pages: list = field(default_factory=list)  # ExtractedPage
    chunks: list = field(default_factory=list)  # doctagger.chunking.Chunk
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ocr_pages(self) -> int:
        return sum(1 for p in self.pages if p.ocr)


def process_file(path: str, extractor, options: ExtractOptions, chunk_tokens: int) -> Extracted:
    """Extract and chunk one file. Never raises: every failure becomes a status and reason."""
    from doctagger.chunking import chunk_pages

    start = time.monotonic()
    options.start()
    try:
        if extractor is None:
            suffix = Path(path).suffix.lower() or "(none)"
            raise ExtractionError("failed", f"unsupported file type {suffix}: doctagger reads "
                                            + ", ".join(supported_suffixes()))
        doc = extractor.extract(Path(path), options)
        chunks = chunk_pages(doc.pages, max_tokens=chunk_tokens)
        options.check_time()
        out = Extracted(status=doc.status, error=doc.error, title=doc.title, author=doc.author,
                        page_count=doc.page_count if doc.page_count is not None else len(doc.pages),
                        pages=doc.pages, chunks=chunks, warnings=list(doc.warnings))
    except ExtractionError as exc:
        out = Extracted(status=exc.status if exc.status in ("failed", "encrypted", "needs_ocr",
                                                            "empty") else "failed",
                        error=exc.reason)
    except MemoryError:
        out = Extracted(status="failed", error="ran out of memory reading it")
    except Exception as exc:  # a broken file must never stop the run
        if os.environ.get("DOCTAGGER_RAISE_ERRORS"):
            raise
        out = Extracted(status="failed", error=f"cannot read it: {type(exc).__name__}: "
                                               f"{one_line(exc)}")
    out.seconds = round(time.monotonic() - start, 3)
    return out


# -- worker processes ------------------------------------------------------------------
def _worker_main(conn, main_pid: int | None = None) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    # One thread per worker for Tesseract: N workers already use the cores, and OpenMP
    # threads on top of them made OCR slower here, not faster.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    if not os.environ.get("DOCTAGGER_RAISE_ERRORS"):
        # Whatever a C library prints, or a crash dump, must not reach the user: the main
        # process reports every file's outcome itself.
        import faulthandler

        faulthandler.disable()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:  # warm up before the first file arrives
        from doctagger.chunking import get_counter
        from doctagger.extractors import import_pymupdf

        import_pymupdf()
        get_counter()
    except Exception:  # reported when a file is extracted
        pass
    while True:
        try:
            # Forked siblings hold copies of the pipe ends, so a main process killed with
            # SIGKILL gives no EOF here: notice that the parent is gone, and stop.
            while not conn.poll(1.0):
                if main_pid is not None and os.getppid() != main_pid:
                    return
            args = conn.recv()
        except (EOFError, OSError):
            return
        if args is None:
            return
        result = process_file(*args)
        try:
            conn.send(result)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an extractor that returned something unpicklable
            conn.send(Extracted("failed", f"the extractor returned what cannot be passed "
                                          f"back: {one_line(exc)}"))


class Pool:
    """N worker processes, one file each at a time; ``run(tasks)`` yields (job, Extracted)
    as files finish, whatever happens to the workers, and None before it blocks."""

    GRACE_SECONDS = 10.0

    def __init__(self, n: int, max_seconds: float | None):
        import multiprocessing
        import sys

        method = "fork" if sys.platform.startswith("linux") else "spawn"
        self.ctx = multiprocessing.get_context(method)
        self.max_seconds = max_seconds
        self.hard_limit = max_seconds * 1.1 + self.GRACE_SECONDS if max_seconds else None
        self.workers = [self._spawn() for _ in range(n)]

    def _spawn(self):
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True,
                                name="doctagger-ingest")
        proc.start()
        child.close()
        return proc, parent

    def _replace(self, i: int) -> int | None:
        proc, conn = self.workers[i]
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        conn.close()
        self.workers[i] = self._spawn()
        return proc.exitcode

    def run(self, tasks: list):
        from multiprocessing.connection import wait

        pending = list(reversed(tasks))
        busy: dict[int, tuple] = {}  # worker index -> (job, args, started)

        def feed(i: int) -> None:
            """Give worker i its next file, before its last result is handed on, so it
            extracts while the caller writes."""
            if not pending:
                return
            job, args = pending.pop()
            try:
                self.workers[i][1].send(args)
            except (OSError, ValueError):  # died while idle: replace it, send again
                self._replace(i)
                self.workers[i][1].send(args)
            busy[i] = (job, args, time.monotonic())

        for i in range(len(self.workers)):
            feed(i)
        while busy:
            timeout = None
            if self.hard_limit:
                timeout = max(0.05, min(s + self.hard_limit for _, _, s in busy.values())
                              - time.monotonic())
            conns = [self.workers[i][1] for i in busy]
            ready = wait(conns, 0)
            if not ready:
                yield None  # about to wait: the caller may commit what it has
                ready = wait(conns, timeout)
            for i in list(busy):
                job, args, started = busy[i]
                conn = self.workers[i][1]
                if conn in ready:
                    del busy[i]
                    try:
                        ex = conn.recv()
                    except Exception:
                        ex = Extracted("failed", _crash_reason(self._replace(i)))
                        ex.seconds = round(time.monotonic() - started, 3)
                elif self.hard_limit and time.monotonic() - started > self.hard_limit:
                    del busy[i]
                    self._replace(i)
                    ex = Extracted("failed", time_limit_reason(self.max_seconds))
                    ex.seconds = round(time.monotonic() - started, 3)
                else:
                    continue
                feed(i)
                yield job, ex

    def close(self, kill: bool = False) -> None:
        for proc, conn in self.workers:
            if not kill:
                try:
                    conn.send(None)
                except (OSError, ValueError):
                    pass
        for proc, conn in self.workers:
            proc.join(0 if kill else 2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)
            conn.close()


def _crash_reason(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    else:
        how = f"exited with code {code}"
    return f"the extractor process {how} while reading it; the file is probably damaged"
