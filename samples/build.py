#!/usr/bin/env python3
# SPDX-License-Identifier: AGPL-3.0-or-later
# (The abstract texts this script typesets are CC BY-SA 3.0; see samples/README.md.)
"""Rebuild the bundled demo corpus in samples/ from the shared medical-abstracts data.

    python samples/build.py                 # rebuild pdfs/, labels.csv, manifest.csv, licence copy
    python samples/build.py --check         # rebuild, then verify (OCR check needs tesseract)
    python samples/build.py --check-only    # verify what is there, rebuild nothing

The input is the Medical Abstracts Text Classification corpus (Schopf, Braun & Matthes,
NLPIR 2022, CC BY-SA 3.0) as kept in ``<data>/classification/medical_abstracts``; ``--data``
defaults to ``../shared/data`` relative to the repository root (the parent of samples/).

Everything is deterministic: a fixed seed picks the abstracts, PDF dates are fixed and the
PDFs are saved with PyMuPDF's reproducible mode, so running this twice gives the same texts,
labels and, with the same PyMuPDF and NumPy versions, the same bytes.

Only PyMuPDF and NumPy are needed.
"""
from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
CORPUS_SUBDIR = Path("classification") / "medical_abstracts"
CSV_NAME = "medical_tc_test.csv"
LICENSE_COPY = "LICENSE-CC-BY-SA-3.0.md"  # upstream's licence file, copied verbatim

# Dataset class id -> label slug.  Class 5 ("general pathological conditions") is a fuzzy
# catch-all and is left out on purpose.
CLASSES = {1: "neoplasms", 2: "digestive", 3: "nervous", 4: "cardiovascular"}
LABEL_ORDER = ["neoplasms", "digestive", "nervous", "cardiovascular"]

MIN_WORDS, MAX_WORDS = 120, 260  # "moderate length": roughly the dataset's 25th-75th percentile
AUTHOR = "Medical Abstracts corpus (Schopf, Braun & Matthes, NLPIR 2022)"
SUBJECT = "Medical abstract(s) from the Medical Abstracts Text Classification corpus, CC BY-SA 3.0"
CREATOR = "doctagger samples/build.py"
FIXED_DATE = "D:20240101000000Z"
CREDIT = ("Text: Medical Abstracts Text Classification corpus, Schopf, Braun & Matthes (NLPIR 2022), "
          "github.com/sebischair/Medical-Abstracts-TC-Corpus, licensed CC BY-SA 3.0. "
          "Typeset for the doctagger demo.")

PAGE = (0, 0, 595, 842)  # A4 in points
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 64, 64, 80
SCAN_DPI = 150

# Block styles: (Base-14 font, size, leading, space before, space after).  Base-14 fonts are
# not embedded (small files) and give a clean text layer (no ligatures, plain WinAnsi text).
STYLES = {
    "h1": ("hebo", 15.0, 19.0, 0.0, 4.0),
    "meta": ("helv", 9.0, 12.0, 0.0, 10.0),
    "h2": ("hebo", 12.0, 15.0, 12.0, 4.0),
    "p": ("helv", 10.5, 14.2, 0.0, 6.0),
}
GREY = (0.35, 0.35, 0.35)

# Per label: how many documents of each kind.  Every label gets 8 documents (32 in all).
#   ("single", 1)       one abstract, one page
#   ("multi", n)        n abstracts flowing over 2-4 pages
#   ("scan", 1)         one abstract, the only page is a scanned image (no text layer)
#   ("mixed-scan", 2)   two abstracts: page 1 has a text layer, page 2 is a scanned image
DOC_PLAN = {
    "neoplasms": [("single", 1)] * 7 + [("multi", 6)],
    "digestive": [("single", 1)] * 6 + [("multi", 4), ("mixed-scan", 2)],
    "nervous": [("single", 1)] * 7 + [("multi", 12)],
    "cardiovascular": [("single", 1)] * 5 + [("multi", 5), ("multi", 7), ("scan", 1)],
}


@dataclass
class Abstract:
    row: int  # 0-based data row in the CSV (header excluded)
    label: str
    text: str

    @property
    def title(self) -> str:
        return split_title(self.text)[0]

    @property
    def body(self) -> str:
        return split_title(self.text)[1]


@dataclass
class DocSpec:
    label: str
    kind: str
    abstracts: list[Abstract] = field(default_factory=list)
    name: str = ""


def die(msg: str) -> None:
    print(f"build.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_TITLE_END = re.compile(r"\.\s+(?=[A-Z(])")


def split_title(text: str) -> tuple[str, str]:
    """Abstracts in this corpus begin with the article title as their first sentence."""
    for m in _TITLE_END.finditer(text):
        head = text[: m.start()]
        last = head.rsplit(" ", 1)[-1]
        if len(last) <= 2 or last.lower() in {"vs", "dr", "al", "etc", "approx", "fig", "no", "i.v"}:
            continue  # probably an abbreviation, keep looking
        if 15 <= len(head) <= 180:
            return head + ".", text[m.end():]
        break
    return "", text


def short_title(text: str, limit: int = 80) -> str:
    title = split_title(text)[0].rstrip(".") or text
    if len(title) <= limit:
        return title
    cut = title[:limit].rsplit(" ", 1)[0].rstrip(",;:-")
    return cut + "..."


def load_abstracts(data: Path) -> dict[str, list[Abstract]]:
    folder = data / CORPUS_SUBDIR
    path = folder / CSV_NAME
    if not data.is_dir():
        die(f"data folder not found: {data}\n"
            "  The samples are built from the shared data folder (../shared/data from the repository "
            "root).\n  Pass its location with --data PATH.")
    if not path.is_file():
        die(f"{path} not found; expected the Medical Abstracts corpus under {folder}")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header[:2] != ["condition_label", "medical_abstract"]:
            die(f"unexpected header in {path}: {header}")
        rows = [(i, int(r[0]), normalise(r[1])) for i, r in enumerate(reader)]
    counts: dict[str, int] = {}
    for _, _, text in rows:
        counts[text] = counts.get(text, 0) + 1
    by_label: dict[str, list[Abstract]] = {lab: [] for lab in LABEL_ORDER}
    for i, cls, text in rows:
        if cls not in CLASSES or counts[text] > 1:  # drop every copy of a duplicated text
            continue
        if not (MIN_WORDS <= len(text.split()) <= MAX_WORDS):
            continue
        if not split_title(text)[0]:
            continue  # keep documents whose heading we can find reliably
        by_label[CLASSES[cls]].append(Abstract(i, CLASSES[cls], text))
    return by_label


def plan_documents(by_label: dict[str, list[Abstract]]) -> list[DocSpec]:
    rng = random.Random(SEED)
    docs: list[DocSpec] = []
    for label in LABEL_ORDER:
        plan = DOC_PLAN[label]
        need = sum(n for _, n in plan)
        pool = by_label[label]
        if len(pool) < need:
            die(f"only {len(pool)} usable abstracts for {label}, need {need}")
        picked = rng.sample(pool, need)
        for kind, n in plan:
            docs.append(DocSpec(label, kind, picked[:n]))
            picked = picked[n:]
    rng.shuffle(docs)  # file names must not reveal the label
    for k, d in enumerate(docs, 1):
        d.name = f"abstract-{k:03d}.pdf"
    return docs


# ---------------------------------------------------------------------------------- typesetting
def blocks_for(abstracts: list[Abstract]) -> list[tuple[str, str]]:
    if len(abstracts) == 1:
        a = abstracts[0]
        return [("h1", a.title), ("meta", "Abstract"), ("p", a.body)]
    out = [("h1", f"Collected abstracts ({len(abstracts)})"),
           ("meta", "Medical Abstracts corpus, selected abstracts")]
    for n, a in enumerate(abstracts, 1):
        out += [("h2", f"{n}. {a.title}"), ("p", a.body)]
    return out


def wrap(text: str, fontname: str, size: float, width: float) -> list[str]:
    import pymupdf

    lines, line = [], ""
    for word in text.split():
        cand = f"{line} {word}" if line else word
        if line and pymupdf.get_text_length(cand, fontname=fontname, fontsize=size) > width:
            lines.append(line)
            line = word
        else:
            line = cand
    if line:
        lines.append(line)
    return lines


def typeset(abstracts: list[Abstract], first_page: int = 1, total_pages: int | None = None):
    """Lay the abstracts out on A4 pages with a heading and a credit footer.

    ``first_page``/``total_pages`` set the "Page i of n" numbering when the result becomes part
    of a larger document.  Returns an open pymupdf.Document."""
    import pymupdf

    doc = pymupdf.open()
    left, right = MARGIN_X, PAGE[2] - MARGIN_X
    top, bottom = MARGIN_TOP, PAGE[3] - MARGIN_BOTTOM
    page, y = None, bottom  # y = baseline of the last line written
    blocks = blocks_for(abstracts)
    for kind, text in blocks:
        font, size, leading, before, after = STYLES[kind]
        lines = wrap(text, font, size, right - left)
        # keep a heading together with at least two lines of the text that follows it
        if kind != "p" and page is not None and y + before + leading * (len(lines) + 2) > bottom:
            page = None
        for n, line in enumerate(lines):
            if page is None or y + leading > bottom:
                page = doc.new_page(width=PAGE[2], height=PAGE[3])
                y = top - leading + size  # first baseline sits `size` below the top margin
            elif n == 0:
                y += before
            y += leading
            page.insert_text((left, y), line, fontname=font, fontsize=size,
                             color=GREY if kind == "meta" else (0, 0, 0))
        y += after
    n = total_pages or doc.page_count
    for pno, pg in enumerate(doc, first_page):
        footer = wrap(CREDIT, "helv", 7, right - left - 60)
        for i, line in enumerate(footer):
            pg.insert_text((left, PAGE[3] - 48 + 9 * i), line, fontname="helv", fontsize=7, color=GREY)
        label = f"Page {pno} of {n}"
        w = pymupdf.get_text_length(label, fontname="helv", fontsize=8)
        pg.insert_text((right - w, PAGE[3] - 48), label, fontname="helv", fontsize=8, color=GREY)
    return doc


def scan_image(page, seed: int) -> bytes:
    """Render a typeset page as a greyish, slightly noisy 'scan' and return it as JPEG bytes."""
    import numpy as np
    import pymupdf

    pix = page.get_pixmap(dpi=SCAN_DPI, colorspace=pymupdf.csGRAY, alpha=False)
    a = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)[:, : pix.width]
    a = a.astype(np.float32)
    rng = np.random.default_rng(seed)
    a = 18.0 + a * (222.0 / 255.0)  # paper ~240 instead of 255, ink ~18 instead of 0
    h, w = a.shape
    a += np.linspace(0.0, -10.0, w, dtype=np.float32)[None, :]  # uneven illumination
    a += rng.normal(0.0, 7.0, size=a.shape).astype(np.float32)  # sensor noise
    specks = rng.random(a.shape) < 0.0004  # dust
    a[specks] = 60.0
    out = np.clip(a, 0, 255).astype(np.uint8)
    scan = pymupdf.Pixmap(pymupdf.csGRAY, w, h, out.tobytes(), 0)
    scan.set_dpi(SCAN_DPI, SCAN_DPI)
    return scan.tobytes("jpeg", jpg_quality=72)


def build_pdf(spec: DocSpec, dest: Path) -> dict:
    import pymupdf

    src = typeset(spec.abstracts)
    out = pymupdf.open()
    scanned: list[int] = []
    if spec.kind in ("single", "multi"):
        out.insert_pdf(src)
    elif spec.kind == "scan":
        for pno, page in enumerate(src):
            new = out.new_page(width=page.rect.width, height=page.rect.height)
            new.insert_image(new.rect, stream=scan_image(page, SEED + spec.abstracts[0].row + pno))
            scanned.append(pno + 1)
    elif spec.kind == "mixed-scan":
        # page 1: a normal text page with the first abstract; page 2: a scan of the second.
        first = typeset(spec.abstracts[:1], 1, 2)
        second = typeset(spec.abstracts[1:], 2, 2)
        if first.page_count != 1 or second.page_count != 1:
            die(f"{spec.name}: mixed-scan abstracts must fit on one page each")
        out.insert_pdf(first)
        page = second[0]
        new = out.new_page(width=page.rect.width, height=page.rect.height)
        new.insert_image(new.rect, stream=scan_image(page, SEED + spec.abstracts[1].row))
        scanned.append(2)
    else:
        raise ValueError(spec.kind)
    out.set_metadata({
        "title": short_title(spec.abstracts[0].text),
        "author": AUTHOR,
        "subject": SUBJECT,
        "keywords": "medical abstract; sample; doctagger demo",
        "creator": CREATOR,
        "producer": "PyMuPDF",
        "creationDate": FIXED_DATE,
        "modDate": FIXED_DATE,
    })
    pages = out.page_count
    out.save(dest, garbage=4, deflate=True, no_new_id=True, reproducible=True)
    out.close()
    return {"pages": pages, "scanned_pages": scanned}


# --------------------------------------------------------------------------------- write / check
def build(data: Path, out_dir: Path) -> list[DocSpec]:
    docs = plan_documents(load_abstracts(data))
    pdf_dir = out_dir / "pdfs"
    pdf_dir.mkdir(parents=True, exist_ok=True)
    for old in pdf_dir.glob("abstract-*.pdf"):
        old.unlink()
    manifest = []
    for d in docs:
        info = build_pdf(d, pdf_dir / d.name)
        if d.kind == "multi" and not 2 <= info["pages"] <= 4:
            die(f"{d.name}: multi-page document has {info['pages']} pages, want 2-4")
        if d.kind == "single" and info["pages"] != 1:
            die(f"{d.name}: single-abstract document has {info['pages']} pages")
        manifest.append((d, info))
    docs_sorted = sorted(manifest, key=lambda x: x[0].name)
    with (out_dir / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["path", "label"])
        for d, _ in docs_sorted:
            w.writerow([f"pdfs/{d.name}", d.label])
    with (out_dir / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["path", "label", "pages", "abstracts", "scanned_pages", "source_rows", "title"])
        for d, info in docs_sorted:
            w.writerow([
                f"pdfs/{d.name}", d.label, info["pages"], len(d.abstracts),
                " ".join(map(str, info["scanned_pages"])),
                " ".join(str(a.row) for a in d.abstracts),  # 0-based data rows of medical_tc_test.csv
                short_title(d.abstracts[0].text),
            ])
    # CC BY-SA 3.0 s.4(a): the licence goes with every copy; keep upstream's copy of it here.
    lic = data / CORPUS_SUBDIR / "LICENSE"
    if lic.is_file():
        (out_dir / LICENSE_COPY).write_bytes(lic.read_bytes())
    counts = {lab: sum(d.label == lab for d in docs) for lab in LABEL_ORDER}
    print(f"wrote {len(docs)} PDFs to {pdf_dir} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return docs


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]{4,}", text.lower())


def check(out_dir: Path, data: Path | None) -> bool:
    """Verify the built corpus: labels, text layers, scanned pages and (if possible) OCR."""
    import shutil

    import pymupdf

    ok = True
    rows = list(csv.DictReader((out_dir / "manifest.csv").read_text(encoding="utf-8").splitlines()))
    labels = list(csv.DictReader((out_dir / "labels.csv").read_text(encoding="utf-8").splitlines()))
    if [(r["path"], r["label"]) for r in rows] != [(r["path"], r["label"]) for r in labels]:
        print("FAIL labels.csv and manifest.csv disagree")
        ok = False
    texts = {}
    if data is not None and (data / CORPUS_SUBDIR / CSV_NAME).is_file():
        with (data / CORPUS_SUBDIR / CSV_NAME).open(newline="", encoding="utf-8") as fh:
            r = csv.reader(fh)
            next(r)
            texts = {i: normalise(x[1]) for i, x in enumerate(r)}
    have_ocr = shutil.which("tesseract") is not None
    for r in rows:
        doc = pymupdf.open(out_dir / r["path"])
        scanned = {int(x) for x in r["scanned_pages"].split()}
        if doc.page_count != int(r["pages"]):
            print(f"FAIL {r['path']}: {doc.page_count} pages, manifest says {r['pages']}")
            ok = False
        meta = doc.metadata
        if not meta.get("title") or not meta.get("author"):
            print(f"FAIL {r['path']}: missing title/author metadata")
            ok = False
        layer = normalise(" ".join(p.get_text() for i, p in enumerate(doc, 1) if i not in scanned))
        squashed = layer.replace(" ", "")
        # source texts that are not in the text layer must be on the scanned page(s)
        unseen = []
        for i in r["source_rows"].split():
            if not texts:
                break
            probe = normalise(split_title(texts[int(i)])[1])[:80].replace(" ", "")
            if probe not in squashed:
                unseen.append(texts[int(i)])
        if unseen and not scanned:
            print(f"FAIL {r['path']}: {len(unseen)} source abstract(s) missing from the text layer")
            ok = False
        for pno, page in enumerate(doc, 1):
            if pno not in scanned:
                if not page.get_text().strip():
                    print(f"FAIL {r['path']} page {pno}: no text layer")
                    ok = False
                continue
            if page.get_text().strip():
                print(f"FAIL {r['path']} page {pno}: scanned page has a text layer")
                ok = False
            if not page.get_images():
                print(f"FAIL {r['path']} page {pno}: scanned page has no image")
                ok = False
            if not have_ocr:
                print(f"skip {r['path']} page {pno}: tesseract not installed, OCR not checked")
                continue
            tp = page.get_textpage_ocr(full=True, dpi=SCAN_DPI, language="eng")
            got = _words(page.get_text(textpage=tp))
            want = set(_words(" ".join(unseen)))
            recall = len(want & set(got)) / len(want) if want else float(len(got) > 50)
            good = recall >= 0.8
            ok &= good
            print(f"{'ok  ' if good else 'FAIL'} {r['path']} page {pno}: scanned, empty text layer; "
                  f"OCR read {len(got)} words, {recall:.0%} of the source words recovered")
        doc.close()
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    print(f"{'ok  ' if size < 2_000_000 else 'FAIL'} samples/ size {size / 1e6:.2f} MB")
    ok &= size < 2_000_000
    print("check passed" if ok else "check FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="the shared data folder (default: ../shared/data from the repository root)")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write (default: samples/)")
    ap.add_argument("--check", action="store_true", help="verify the result after building")
    ap.add_argument("--check-only", action="store_true", help="verify the existing samples only")
    args = ap.parse_args(argv)
    data = args.data.resolve()
    if args.check_only:
        return 0 if check(args.out, data if data.is_dir() else None) else 1
    build(data, args.out)
    if args.check:
        return 0 if check(args.out, data) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
