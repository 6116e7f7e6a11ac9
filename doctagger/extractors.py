"""Text extractors: the core's essential plugin, and the interface a plugin implements to
teach ``doctagger ingest`` a new file type.

An extractor is any object with

- ``name``: a short name (``"pymupdf"``, ``"text"``);
- ``suffixes``: the file suffixes it reads, lower case, without the dot;
- ``extract(path, options) -> ExtractedDocument``: the pages of the file, each with its
  text and the text blocks (paragraphs) in it. Raise :class:`ExtractionError` with a
  status (``failed``, ``encrypted``, ``needs_ocr``, ``empty``) and a one-line reason when
  the file cannot be read; any other exception is recorded as ``failed`` too.

and is registered from the ``register_extractors(register)`` hook. An extractor runs in a
worker process, so it must be picklable (an instance of a module-level class), and it
should call ``options.check_time()`` between pages so ``--max-seconds`` can stop it.
Later registrations win for a suffix, so a plugin can replace a built-in.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from doctagger.chunking import clean_text
from doctagger.errors import DoctaggerError
from doctagger.hookspecs import hookimpl

#: statuses a document can end with (documents.status)
STATUSES = ("ok", "empty", "needs_ocr", "encrypted", "failed")
OCR_MODES = ("auto", "off", "force")
#: phrases of the needs_ocr reasons that a later run with OCR can fix (ingest retries them)
OCR_OFF = "OCR is off"
OCR_MISSING = "no OCR engine is installed"
#: what earlier versions wrote instead of OCR_MISSING (their rows are retried as well)
OCR_MISSING_OLD = "Tesseract is not installed"


class ExtractionError(DoctaggerError):
    """A file could not be ingested: ``status`` says how, the message says why."""

    def __init__(self, status: str, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass
class Block:
    """A text block (a paragraph) of a page: ``page.text[start:end]``, and where it is."""

    start: int
    end: int
    bbox: tuple | None = None  # (x0, y0, x1, y1) in points, origin top left


@dataclass
class ExtractedPage:
    """One page. Its ``text`` is its blocks joined with a blank line ("\\n\\n"), each block
    stripped and cleaned (:func:`doctagger.chunking.clean_text`); chunk offsets point into
    it, and it is what ``pages.text`` stores."""

    number: int  # 1-based
    text: str
    blocks: list[Block]
    width: float | None = None
    height: float | None = None
    ocr: bool = False
    ocr_engine: str | None = None  # the engine that read the page, when it was OCRed

    @classmethod
    def from_blocks(cls, number: int, blocks, *, width=None, height=None,
                    ocr: bool = False, ocr_engine: str | None = None) -> "ExtractedPage":
        """A page from ``(text, bbox)`` pairs in reading order (empty ones are dropped)."""
        parts: list[str] = []
        out: list[Block] = []
        pos = 0
        for text, bbox in blocks:
            text = clean_text(text).strip()
            if not text:
                continue
            if parts:
                pos += 2
            out.append(Block(pos, pos + len(text), tuple(bbox) if bbox else None))
            parts.append(text)
            pos += len(text)
        return cls(number, "\n\n".join(parts), out, width, height, ocr or bool(ocr_engine),
                   ocr_engine)

    @classmethod
    def from_text(cls, number: int, text: str) -> "ExtractedPage":
        """A page holding ``text`` as given (cleaned, same length); its blocks are the
        paragraphs between blank lines, so offsets into ``text`` stay valid."""
        text = clean_text(text)
        blocks = [Block(m.start(), m.end()) for m in
                  re.finditer(r"\S(?:.*?\S)??(?=[ \t\r]*\n[ \t\r]*\n|\s*\Z)", text, re.S)]
        return cls(number, text, blocks)


@dataclass
class ExtractedDocument:
    pages: list[ExtractedPage]
    title: str | None = None
    author: str | None = None
    page_count: int | None = None  # pages in the file (len(pages) unless a page failed)
    status: str = "ok"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ocr_pages(self) -> int:
        return sum(1 for p in self.pages if p.ocr)


@dataclass
class ExtractOptions:
    """How to extract; ``ingest`` fills it from the command line."""

    ocr: str = "auto"  # auto | off | force
    ocr_language: str = "eng"
    ocr_dpi: int = 300
    tessdata: str | None = None  # Tesseract's language folder
    #: the OCR engine ingest resolved (doctagger.ocr): "rapidocr", "tesseract", or None when
    #: none can be used (then tessdata alone, if set, means Tesseract)
    ocr_engine: str | None = None
    ocr_threads: int = 0  # ONNX Runtime threads for RapidOCR (0: its own default)
    ocr_unavailable: str | None = None  # why no engine can be used, with what to do
    passwords: tuple[str, ...] = ()
    max_pages: int | None = None
    max_seconds: float | None = None
    max_image_mb: float | None = None  # the largest page image rendered for OCR (RGB)
    started: float | None = None  # set when a file starts

    def engine(self):
        """The OCR engine to use (a doctagger.ocr.Engine), or None."""
        from doctagger.ocr import Engine

        if self.ocr == "off":
            return None
        if self.ocr_engine:
            return Engine(self.ocr_engine, self.tessdata)
        return Engine("tesseract", self.tessdata) if self.tessdata else None

    def start(self) -> "ExtractOptions":
        self.started = time.monotonic()
        return self

    def check_time(self) -> None:
        """Raise ExtractionError once the file has taken longer than max_seconds."""
        if self.max_seconds and self.started is not None:
            if time.monotonic() - self.started > self.max_seconds:
                raise ExtractionError("failed", time_limit_reason(self.max_seconds))


def time_limit_reason(seconds: float) -> str:
    return (f"took longer than {seconds:g} s (--max-seconds); raise the limit to ingest it")


class Extractor:
    """Documentation base class; subclassing is optional."""

    name = ""
    suffixes: tuple[str, ...] = ()

    def extract(self, path: Path, options: ExtractOptions) -> ExtractedDocument:
        raise NotImplementedError


def import_pymupdf():
    """Import PyMuPDF without its optional ONNX layout analyser (see doctagger.lightimports).
    Silences MuPDF's own messages on stderr: we report problems ourselves."""
    from doctagger.lightimports import import_without

    import_without("pymupdf", "pymupdf.layout", "pymupdf4llm")
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


def one_line(exc: BaseException | str, limit: int = 200) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sniff(head: bytes) -> str:
    kinds = [(b"%PDF", "a PDF"), (b"PK\x03\x04", "a ZIP archive"), (b"\x89PNG", "a PNG image"),
             (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
             (b"{\\rtf", "an RTF document"), (b"\xd0\xcf\x11\xe0", "an old Office document")]
    for magic, what in kinds:
        if head.startswith(magic):
            return what
    lower = head[:512].lower()
    if b"<html" in lower or b"<!doctype html" in lower:
        return "an HTML page"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "binary data"


class PyMuPDFExtractor(Extractor):
    """PDF and the other formats MuPDF opens; OCR of pages without text (doctagger.ocr).

    Only text is read: embedded files are never extracted, JavaScript is never run (MuPDF
    is built to run none, and we switch it off per document as well), images are decoded
    only to OCR a page that has no text.
    """

    name = "pymupdf"
    suffixes = ("pdf", "xps", "oxps", "epub", "mobi", "fb2", "cbz", "svg")

    def extract(self, path: Path, options: ExtractOptions) -> ExtractedDocument:
        path = Path(path)
        size = path.stat().st_size
        if size == 0:
            raise ExtractionError("failed", "empty file (0 bytes)")
        suffix = path.suffix.lower().lstrip(".")
        not_pdf = None
        if suffix == "pdf":
            with open(path, "rb") as fh:
                head = fh.read(1024)
            if b"%PDF" not in head:
                not_pdf = (f"not a PDF: the file does not start with %PDF (it looks like "
                           f"{_sniff(head)})")
                if _sniff(head) not in ("text", "binary data"):
                    raise ExtractionError("failed", not_pdf)
        pymupdf = import_pymupdf()
        try:
            doc = pymupdf.open(path, filetype=suffix or None)
        except Exception as exc:
            raise ExtractionError("failed", not_pdf or "cannot open it: "
                                  + one_line(exc).replace(str(path), path.name)) from None
        with doc:
            if not_pdf and doc.page_count == 0:  # MuPDF repairs what it can; nothing here
                raise ExtractionError("failed", not_pdf)
            return self._read(pymupdf, doc, options)

    def _read(self, pymupdf, doc, options: ExtractOptions) -> ExtractedDocument:
        if doc.needs_pass:
            if not any(doc.authenticate(pw) for pw in options.passwords):
                tried = len(options.passwords)
                raise ExtractionError("encrypted", (
                    f"encrypted: none of the {tried} password{'s' if tried > 1 else ''} "
                    "given opens it") if tried else
                    "encrypted: it needs a password; give it with --password")
        _disable_js(pymupdf, doc)
        count = doc.page_count
        if count == 0:
            raise ExtractionError("empty", "the document has no pages")
        if options.max_pages and count > options.max_pages:
            raise ExtractionError("failed", f"has {count} pages, over --max-pages "
                                            f"{options.max_pages}; raise the limit to ingest it")
        meta = doc.metadata or {}
        result = ExtractedDocument(pages=[], title=_meta(meta.get("title")),
                                   author=_meta(meta.get("author")), page_count=count)
        if getattr(doc, "is_repaired", False):
            result.warnings.append("the file is damaged and was repaired: text may be missing")
        needs_ocr: list[int] = []
        unreadable = 0
        for number in range(count):
            options.check_time()
            try:
                page = doc.load_page(number)
                blocks, engine = self._page_blocks(pymupdf, page, options, result.warnings)
            except ExtractionError:
                raise
            except Exception as exc:
                unreadable += 1
                result.warnings.append(f"page {number + 1} could not be read: {one_line(exc)}")
                result.pages.append(ExtractedPage(number + 1, "", []))
                continue
            if blocks is None:  # no text layer, not OCRed
                needs_ocr.append(number + 1)
                blocks = []
            rect = page.rect
            result.pages.append(ExtractedPage.from_blocks(
                number + 1, blocks, width=round(rect.width, 2), height=round(rect.height, 2),
                ocr_engine=engine))
        has_text = any(p.blocks for p in result.pages)
        if unreadable == count:
            raise ExtractionError("failed", f"no page could be read ({result.warnings[-1]})")
        if needs_ocr:
            result.status = "needs_ocr"
            result.error = _needs_ocr_reason(needs_ocr, count, options)
        elif not has_text:
            result.status = "empty"
            result.error = "no text found: the pages are blank or drawn without text"
        return result

    def _page_blocks(self, pymupdf, page, options, warnings):
        """(blocks, engine): blocks as (text, bbox) pairs, and the OCR engine's name when
        OCR read them; blocks None when the page needs OCR."""
        engine = options.engine()
        if options.ocr == "force" and engine:
            blocks = _ocr(pymupdf, page, engine, options, warnings)
            if blocks is not None:
                return blocks, engine.name
            engine = None  # reported; fall back to the text layer
        blocks = _text_blocks(pymupdf, page)
        if blocks or not _has_images(page):
            return blocks, None
        if not engine:
            return None, None
        blocks = _ocr(pymupdf, page, engine, options, warnings)
        return (None, None) if blocks is None else (blocks, engine.name)


def _ocr(pymupdf, page, engine, options: ExtractOptions, warnings: list[str]):
    from doctagger.ocr import read_page

    try:
        return read_page(pymupdf, page, engine, dpi=options.ocr_dpi,
                         language=options.ocr_language, max_image_mb=options.max_image_mb,
                         threads=options.ocr_threads, warnings=warnings)
    except Exception as exc:
        warnings.append(f"page {page.number + 1}: OCR ({engine.name}) failed: {one_line(exc)}")
        return None


def _text_blocks(pymupdf, page, textpage=None) -> list[tuple]:
    raw = page.get_text("blocks", flags=pymupdf.TEXTFLAGS_BLOCKS, textpage=textpage)
    return [(b[4], b[:4]) for b in raw if b[6] == 0 and b[4].strip()]


def _meta(value) -> str | None:
    value = " ".join(str(value or "").split())
    return value or None


def _disable_js(pymupdf, doc) -> None:
    try:
        if doc.is_pdf:
            pymupdf.mupdf.pdf_disable_js(pymupdf._as_pdf_document(doc))
    except Exception:  # an older PyMuPDF without the call: MuPDF runs no JS unless enabled
        pass


def _has_images(page) -> bool:
    try:
        return bool(page.get_image_info())
    except Exception:
        return False


def _needs_ocr_reason(pages: list[int], count: int, options: ExtractOptions) -> str:
    listed = ", ".join(map(str, pages[:10])) + (", …" if len(pages) > 10 else "")
    what = (f"page {listed} has" if len(pages) == 1
            else f"{len(pages)} of {count} pages ({listed}) have")
    if options.ocr == "off":
        return f"{what} no text layer and {OCR_OFF}; run with --ocr auto"
    if not options.engine():
        from doctagger.ocr import NO_ENGINE_HINT

        why = options.ocr_unavailable or NO_ENGINE_HINT
        if why == NO_ENGINE_HINT:
            return f"{what} no text layer and {OCR_MISSING}: {why}"
        return f"{what} no text layer and cannot be OCRed: {why}"
    return f"{what} no text layer and could not be OCRed (see the warnings)"


class TextExtractor(Extractor):
    """Plain text and Markdown: one page per form feed (usually one page), one block per
    paragraph. UTF-8 (with or without BOM), else UTF-16 with a BOM, else Windows-1252."""

    name = "text"
    suffixes = ("txt", "md", "markdown", "text")

    def extract(self, path: Path, options: ExtractOptions) -> ExtractedDocument:
        data = Path(path).read_bytes()
        if not data:
            raise ExtractionError("failed", "empty file (0 bytes)")
        if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ExtractionError("failed", "not a text file: it contains binary data")
        text = _decode(data)
        pages = [ExtractedPage.from_text(n, part)
                 for n, part in enumerate(text.split("\f"), start=1)]
        result = ExtractedDocument(pages=pages, page_count=len(pages))
        if options.max_pages and len(pages) > options.max_pages:
            raise ExtractionError("failed", f"has {len(pages)} pages, over --max-pages "
                                            f"{options.max_pages}; raise the limit to ingest it")
        first = next((line.strip().lstrip("#").strip() for line in text.splitlines()
                      if line.strip()), "")
        result.title = first[:200] or None
        if not any(p.blocks for p in pages):
            result.status, result.error = "empty", "no text found: the file holds only white space"
        return result


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


@hookimpl
def register_extractors(register):
    register(PyMuPDFExtractor())
    register(TextExtractor())


# -- helpers ingest uses ---------------------------------------------------------------
def extractor_for(path: Path):
    """The registered extractor for a file's suffix, or None."""
    from doctagger import plugins

    suffix = Path(path).suffix.lower().lstrip(".")
    for extractor in plugins.extractors():
        if suffix in getattr(extractor, "suffixes", ()):
            return extractor
    return None


def supported_suffixes() -> list[str]:
    from doctagger import plugins

    return sorted({s for e in plugins.extractors() for s in getattr(e, "suffixes", ())})
