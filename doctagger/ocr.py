"""OCR engines: the text of a page that has no text layer, read from its image.

Two engines, chosen with ``ingest --ocr-engine``:

- ``rapidocr``: RapidOCR (PyPI ``rapidocr``) on ONNX Runtime, with the PP-OCRv6 detection
  and recognition models that ship inside its wheel: installed with doctagger, nothing is
  downloaded at run time. Its bundled model reads English, French (accents included) and Chinese.
- ``tesseract``: Tesseract through PyMuPDF (``page.get_textpage_ocr``), when the system has
  it with the language data ``--ocr-language`` asks for.

``auto`` takes the first engine of :data:`AUTO_ORDER` that can read the language, best
first by ``bench/ocr`` (character error rate, then pages per second; docs/ingest.md).

The main process only *resolves* the engine (:func:`resolve_engine`: no heavy import);
worker processes read pages with :func:`read_page`, which loads an engine once per process.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass

#: what --ocr-engine accepts
ENGINE_CHOICES = ("auto", "rapidocr", "tesseract")
#: the engines --ocr-engine auto tries, best first (bench/ocr, docs/ingest.md)
AUTO_ORDER = ("rapidocr", "tesseract")
#: Tesseract language codes RapidOCR's bundled model reads (English and French measured by
#: bench/ocr, Chinese as its authors publish)
RAPIDOCR_LANGUAGES = frozenset({"eng", "fra", "chi_sim", "chi_tra"})
#: what to do when no engine can read a page
NO_ENGINE_HINT = ("install an OCR engine and run ingest again: pip install rapidocr "
                  "onnxruntime (in doctagger's environment), or Tesseract (Debian/Ubuntu: "
                  "sudo apt-get install tesseract-ocr; macOS: brew install tesseract)")


@dataclass(frozen=True)
class Engine:
    """A resolved engine: its name, and for Tesseract the language folder."""

    name: str
    tessdata: str | None = None


def rapidocr_installed() -> bool:
    """RapidOCR and ONNX Runtime are importable (found, not imported: that takes 0.5 s)."""
    return all(importlib.util.find_spec(m) is not None for m in ("rapidocr", "onnxruntime"))


def rapidocr_reads(language: str) -> bool:
    return all(lang in RAPIDOCR_LANGUAGES for lang in language.split("+") if lang)


def available(language: str = "eng") -> dict[str, Engine]:
    """The engines installed here that can read ``language``, by name."""
    found: dict[str, Engine] = {}
    if rapidocr_installed() and rapidocr_reads(language):
        found["rapidocr"] = Engine("rapidocr")
    tessdata = find_tessdata(language)
    if tessdata:
        found["tesseract"] = Engine("tesseract", tessdata)
    return found


def resolve_engine(choice: str, language: str = "eng") -> tuple[Engine | None, str | None]:
    """(engine, why not): the engine ``--ocr-engine choice`` means on this machine, or None
    and a one-line reason with what to do."""
    from doctagger.errors import InvalidInputError

    if choice not in ENGINE_CHOICES:
        raise InvalidInputError(f"--ocr-engine must be one of {', '.join(ENGINE_CHOICES)}")
    found = available(language)
    if choice == "auto":
        for name in AUTO_ORDER:
            if name in found:
                return found[name], None
        if rapidocr_installed():  # installed, but not for this language
            return None, (f"no OCR engine here reads '{language}': RapidOCR's bundled model "
                          f"reads {', '.join(sorted(RAPIDOCR_LANGUAGES))}; install Tesseract "
                          f"with the '{language}' language data")
        return None, NO_ENGINE_HINT
    if choice in found:
        return found[choice], None
    if choice == "rapidocr":
        if not rapidocr_installed():
            return None, ("RapidOCR is not installed: pip install rapidocr onnxruntime "
                          "(in doctagger's environment)")
        return None, (f"RapidOCR's bundled model does not read '{language}' (it reads "
                      f"{', '.join(sorted(RAPIDOCR_LANGUAGES))}); use --ocr-engine tesseract")
    return None, (f"Tesseract with the '{language}' language data is not installed "
                  "(Debian/Ubuntu: sudo apt-get install tesseract-ocr; macOS: brew install "
                  "tesseract)")


# -- in the worker processes ------------------------------------------------------------
_RAPIDOCR = {}  # threads -> the loaded engine (one per process)
#: RapidOCR's 180-degree line classifier: off, measured (bench/ocr --rapidocr-cls,
#: docs/ingest.md): on noisy scans it turned upright lines over and read them as garbage
USE_CLS = False


def _rapidocr(threads: int):
    engine = _RAPIDOCR.get(threads)
    if engine is None:
        from rapidocr import RapidOCR

        params = {"Global.log_level": "error", "Global.use_cls": USE_CLS}
        if threads > 0:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        engine = _RAPIDOCR[threads] = RapidOCR(params=params)
    return engine


def fit_dpi(page, dpi: int, max_image_mb: float | None, warnings: list[str]) -> int | None:
    """The resolution to render ``page`` at: ``dpi``, lowered (reported) to keep the RGB
    image under ``max_image_mb``; None (reported) when even 50 dpi would not fit."""
    rect = page.rect
    area = max(rect.width, 1.0) * max(rect.height, 1.0)  # points²
    if max_image_mb:
        limit = max_image_mb * 1024 * 1024 / 3  # RGB pixels
        if area * (dpi / 72) ** 2 > limit:
            fit = int(72 * (limit / area) ** 0.5)
            if fit < 50:
                warnings.append(f"page {page.number + 1} not OCRed: its image would pass "
                                f"--max-image-mb {max_image_mb:g} even at 50 dpi")
                return None
            warnings.append(f"page {page.number + 1} OCRed at {fit} dpi instead of {dpi} to "
                            f"stay under --max-image-mb {max_image_mb:g}")
            return fit
    return dpi


def read_page(pymupdf, page, engine: Engine, *, dpi: int, language: str = "eng",
              max_image_mb: float | None = None, threads: int = 0,
              warnings: list[str]) -> list[tuple] | None:
    """OCR one whole page: its text blocks as ``(text, (x0, y0, x1, y1))`` in points, in
    reading order; None (with a warning) when the page is too large to render. An engine's
    failure raises (the extractor reports it)."""
    dpi = fit_dpi(page, dpi, max_image_mb, warnings)
    if dpi is None:
        return None
    if engine.name == "tesseract":
        return _tesseract(pymupdf, page, dpi, language, engine.tessdata)
    return _rapidocr_blocks(pymupdf, page, dpi, threads)


def _tesseract(pymupdf, page, dpi, language, tessdata):
    with quiet_stderr():  # Tesseract prints its own notes ("Line cannot be recognized")
        textpage = page.get_textpage_ocr(flags=pymupdf.TEXTFLAGS_BLOCKS, dpi=dpi, full=True,
                                         language=language, tessdata=tessdata)
    raw = page.get_text("blocks", flags=pymupdf.TEXTFLAGS_BLOCKS, textpage=textpage)
    return [(b[4], b[:4]) for b in raw if b[6] == 0 and b[4].strip()]


def _rapidocr_blocks(pymupdf, page, dpi, threads):
    import numpy as np

    engine = _rapidocr(threads)
    pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csRGB, alpha=False)
    image = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.h, pix.w, pix.n)
    result = engine(image[:, :, ::-1].copy())  # OpenCV's channel order: BGR
    boxes, texts = getattr(result, "boxes", None), getattr(result, "txts", None)
    if boxes is None or not texts:
        return []
    # the page's rectangle may not start at (0, 0): pixmap pixels map from its top left
    x0, y0 = page.rect.x0, page.rect.y0
    scale = 72.0 / dpi
    lines = [(text.strip(), [(x0 + float(px) * scale, y0 + float(py) * scale) for px, py in box])
             for box, text in zip(boxes, texts) if text and text.strip()]
    return group_lines(lines)


def group_lines(lines: list[tuple]) -> list[tuple]:
    """Text lines ``(text, quad)`` -> paragraphs ``(text, bbox)`` in reading order.

    ``quad`` is the line's four corners (top left, top right, bottom right, bottom left),
    so skewed lines keep their slope. A line joins the block whose last line it follows:
    the two overlap horizontally and, where they do, the new line's middle lies 0.4 to 1.6
    line heights below the last one's. Otherwise it starts a block. Blocks keep the order of
    their first line, except that blocks starting side by side (tops within a line height
    of each other: the columns of a page) are read left to right."""
    import math

    # Undo the page's skew first (the median slope of its lines), so that lines, columns
    # and their order are judged as on a straight page; the boxes returned stay as found.
    angles = sorted(math.atan2(q[1][1] - q[0][1], q[1][0] - q[0][0]) for _, q in lines
                    if len(q) >= 4 and abs(q[1][0] - q[0][0]) > 1e-6)
    angle = angles[len(angles) // 2] if angles else 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    items = []
    for text, quad in lines:
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = [(x * cos + y * sin, -x * sin + y * cos)
                                                  for x, y in quad[:4]]
        height = max(((dx - ax) ** 2 + (dy - ay) ** 2) ** 0.5,
                     ((cx - bx) ** 2 + (cy - by) ** 2) ** 0.5, 1.0)
        slope = (by - ay) / (bx - ax) if abs(bx - ax) > 1e-6 else 0.0
        mid_x, mid_y = (ax + bx + cx + dx) / 4, (ay + by + cy + dy) / 4
        xs, ys = (ax, bx, cx, dx), (ay, by, cy, dy)
        ox, oy = [p[0] for p in quad[:4]], [p[1] for p in quad[:4]]
        items.append({"text": text, "h": height, "slope": slope, "mx": mid_x, "my": mid_y,
                      "gb": (min(xs), min(ys), max(xs), max(ys)),
                      "bbox": (min(ox), min(oy), max(ox), max(oy))})

    def middle_at(item, x):
        return item["my"] + item["slope"] * (x - item["mx"])

    blocks: list[dict] = []
    for item in sorted(items, key=lambda it: (it["my"], it["mx"])):
        x0, y0, x1, y1 = item["gb"]
        home = None
        for block in reversed(blocks):
            last = block["last"]
            lx0, _, lx1, _ = last["gb"]
            if min(x1, lx1) <= max(x0, lx0):
                continue
            x = (max(x0, lx0) + min(x1, lx1)) / 2
            drop = middle_at(item, x) - middle_at(last, x)
            height = max(item["h"], last["h"])
            if 0.4 * height < drop < 1.6 * height:
                home = block
                break
        if home is None:
            blocks.append({"lines": [item["text"]], "bbox": list(item["bbox"]), "last": item,
                           "first_h": item["h"], "top": item["gb"][1], "left": item["gb"][0]})
            continue
        home["lines"].append(item["text"])
        bb, (ox0, oy0, ox1, oy1) = home["bbox"], item["bbox"]
        home["bbox"] = [min(bb[0], ox0), min(bb[1], oy0), max(bb[2], ox1), max(bb[3], oy1)]
        home["left"] = min(home["left"], x0)
        home["last"] = item
    ordered: list[dict] = []
    band: list[dict] = []
    for block in blocks:  # created in the order of their first line's middle
        if band and block["top"] - band[0]["top"] >= band[0]["first_h"]:
            ordered += sorted(band, key=lambda b: b["left"])
            band = []
        band.append(block)
    ordered += sorted(band, key=lambda b: b["left"])
    return [("\n".join(b["lines"]), tuple(round(v, 2) for v in b["bbox"])) for b in ordered]


def default_threads(workers: int) -> int:
    """ONNX Runtime threads per worker process: the cores shared among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null for the duration (C libraries write there)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def find_tessdata(language: str = "eng") -> str | None:
    """Tesseract's language folder when Tesseract and ``language`` are installed, else
    None. Honours TESSDATA_PREFIX; does not import PyMuPDF."""
    import glob
    import shutil
    import subprocess

    candidates = []
    if os.environ.get("TESSDATA_PREFIX"):
        candidates.append(os.environ["TESSDATA_PREFIX"])
    exe = shutil.which("tesseract")
    if exe:
        try:
            out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True,
                                 timeout=20).stdout
            found = re.search(r'List of available languages in "(.+?)"', out)
            if found:
                candidates.append(found.group(1))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    candidates += ["/usr/share/tessdata", "/usr/local/share/tessdata",
                   "/opt/homebrew/share/tessdata"]
    langs = [lang for lang in language.split("+") if lang]
    for folder in candidates:
        if folder and all(os.path.isfile(os.path.join(folder, f"{lang}.traineddata"))
                          for lang in langs):
            return folder
    return None
