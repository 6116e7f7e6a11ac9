"""OCR of pages without a text layer: RapidOCR (installed with doctagger, so these run on
every machine) and Tesseract (skipped with a reason where the system lacks it)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from doctagger import ocr
from doctagger.index import Index
from tests.test_ingest import ingest_json, make_pdf, make_scanned_pdf

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
HAS_TESSERACT = ocr.find_tessdata() is not None
needs_tesseract = pytest.mark.skipif(
    not HAS_TESSERACT, reason="Tesseract is not installed (apt-get install tesseract-ocr)")
#: RapidOCR is a dependency of doctagger wherever its wheels exist (Python < 3.15): there a
#: missing RapidOCR is an install failure, not a reason to skip
needs_rapidocr = pytest.mark.skipif(
    sys.version_info >= (3, 15), reason="RapidOCR is not a dependency on this Python")
ENGINES = [pytest.param("rapidocr", marks=needs_rapidocr),
           pytest.param("tesseract", marks=needs_tesseract)]


@pytest.fixture
def no_tesseract(monkeypatch):
    """This machine as a fresh one: no Tesseract language data anywhere."""
    monkeypatch.setattr(ocr, "find_tessdata", lambda language="eng": None)


@pytest.fixture
def no_engine(monkeypatch, no_tesseract):
    monkeypatch.setattr(ocr, "rapidocr_installed", lambda: False)


@pytest.mark.parametrize("engine", ENGINES)
def test_scanned_page_is_ocred_by_the_engine_asked_for(invoke, tmp_path, index_path, engine):
    make_scanned_pdf(tmp_path / "scan.pdf")
    result, data = ingest_json(invoke, tmp_path / "scan.pdf", "--ocr-engine", engine)
    assert result.exit_code == 0, result.output
    assert data["results"][0]["ocr_pages"] == 1 and data["ocr_engine"] == engine
    with Index(index_path) as index:
        doc = index.document("scan.pdf")
        text = index.chunks(doc["id"])[0]["text"]
        page = index.one("select ocr, ocr_engine from pages where document_id = ?", [doc["id"]])
    assert page == {"ocr": 1, "ocr_engine": engine}
    assert "4711" in text and "Lisbon" in text
    assert "scan.pdf" in invoke("search", "Lisbon").output
    shown = invoke("show", "scan.pdf")
    assert f"OCR:          page 1 read by {engine}" in shown.output
    listed = json.loads(invoke("docs", "--json").stdout)
    assert listed[0]["ocr"] == [{"page": 1, "engine": engine}]
    assert json.loads(invoke("show", "scan.pdf", "--json").stdout)["document"]["ocr"] == [
        {"page": 1, "engine": engine}]


@needs_rapidocr
def test_a_fresh_machine_ocrs_with_rapidocr(invoke, tmp_path, index_path, no_tesseract):
    """No Tesseract: auto reads the scan with the engine doctagger installs."""
    make_scanned_pdf(tmp_path / "scan.pdf", text="Quarterly rent statement 2025")
    result = invoke("ingest", tmp_path)
    assert result.exit_code == 0, result.output
    assert "(1 OCRed by rapidocr)" in result.output
    with Index(index_path) as index:
        text = index.chunks(index.document("scan.pdf")["id"])[0]["text"]
    assert "Quarterly rent statement 2025" in text


@needs_rapidocr
def test_the_scanned_sample_pages_read_as_their_source_text(invoke, index_path, no_tesseract):
    """The two scanned pages of samples/ (a noisy 150 dpi 'scan' of typeset abstracts):
    nearly every distinct word of 4+ letters of the page's source text is found."""
    import re

    result, data = ingest_json(invoke, SAMPLES / "pdfs" / "abstract-005.pdf",
                               SAMPLES / "pdfs" / "abstract-016.pdf")
    assert result.exit_code == 0, result.output
    assert data["ocr_pages"] == 2
    with Index(index_path) as index:
        for name, page in (("abstract-005.pdf", 2), ("abstract-016.pdf", 1)):
            doc = index.document(name)
            got = index.one("select text, ocr_engine from pages where document_id = ? and "
                            "page = ?", [doc["id"], page])
            assert got["ocr_engine"] == "rapidocr"
            words = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", _source_of(name, page))}
            found = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", got["text"])}
            assert len(words & found) / len(words) > 0.95, sorted(words - found)


def _source_of(name: str, page: int) -> str:
    """The abstract typeset on a scanned sample page (samples/build.py: the scanned page
    holds one abstract, the manifest's last source row on a two-page PDF)."""
    with open(SAMPLES / "manifest.csv", encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["path"].endswith(name))
    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "classification" / \
        "medical_abstracts" / "medical_tc_test.csv"
    if not source.exists():
        pytest.skip("../shared/data is absent (the samples' source texts are there)")
    with open(source, encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    return rows[int(row["source_rows"].split()[page - 1 if int(row["pages"]) > 1 else 0])][1]


@pytest.mark.parametrize("engine", ENGINES)
def test_ocr_resolution_is_lowered_to_fit_the_image_limit(invoke, tmp_path, engine):
    make_scanned_pdf(tmp_path / "scan.pdf")
    # 400x120 pt at 300 dpi is 6 MB as RGB; 2 MB allows about 170 dpi
    result, data = ingest_json(invoke, tmp_path / "scan.pdf", "--max-image-mb", "2",
                               "--ocr-engine", engine)
    assert result.exit_code == 0
    warning = data["results"][0]["warnings"][0]
    assert warning.startswith("page 1 OCRed at ") and "--max-image-mb 2" in warning
    text = invoke("ingest", tmp_path / "scan.pdf", "--force", "--max-image-mb", "2")
    assert "warning    " in text.output and "--max-image-mb 2" in text.output


def test_without_any_engine_a_scan_needs_ocr_with_one_hint(invoke, tmp_path, monkeypatch,
                                                           index_path):
    installed, tessdata = ocr.rapidocr_installed, ocr.find_tessdata
    monkeypatch.setattr(ocr, "find_tessdata", lambda language="eng": None)
    monkeypatch.setattr(ocr, "rapidocr_installed", lambda: False)
    make_scanned_pdf(tmp_path / "scan1.pdf")
    make_scanned_pdf(tmp_path / "scan2.pdf", text="Another scanned page")
    result = invoke("ingest", tmp_path)
    assert result.exit_code == 3
    assert result.output.count("Hint: 2 documents need OCR: install an OCR engine") == 1
    assert "pip install rapidocr onnxruntime" in result.output
    assert "sudo apt-get install tesseract-ocr" in result.output
    with Index(index_path) as index:
        row = index.document("scan1.pdf")
    assert row["status"] == "needs_ocr"
    assert row["error"].startswith("page 1 has no text layer and no OCR engine is installed")
    # an engine is installed now: retried without --force
    monkeypatch.setattr(ocr, "rapidocr_installed", installed)
    monkeypatch.setattr(ocr, "find_tessdata", tessdata)
    result, data = ingest_json(invoke, tmp_path)
    assert result.exit_code == 0, result.output
    assert {r["action"] for r in data["results"]} == {"reextracted"}, data["results"]
    assert data["ocr_pages"] == 2


def test_rows_from_before_rapidocr_are_retried(invoke, tmp_path, index_path):
    """A scan stored 'needs OCR' by an earlier version (its reason named Tesseract) is
    read once an engine is available, without --force."""
    make_scanned_pdf(tmp_path / "scan.pdf")
    assert invoke("ingest", tmp_path, "--ocr", "off").exit_code == 3
    with Index(index_path) as index:
        index.conn.execute("update documents set error = 'page 1 has no text layer and "
                           "Tesseract is not installed: install Tesseract to OCR them'")
        index.conn.commit()
    result, data = ingest_json(invoke, tmp_path)
    assert result.exit_code == 0 and data["results"][0]["action"] == "reextracted"


def test_a_language_no_installed_engine_reads(invoke, tmp_path, index_path, no_tesseract):
    make_scanned_pdf(tmp_path / "scan.pdf")
    result = invoke("ingest", tmp_path, "--ocr-language", "deu")
    assert result.exit_code == 3
    assert "no OCR engine here reads 'deu'" in result.output
    assert "install Tesseract with the 'deu' language data" in result.output
    assert result.output.count("Hint: ") == 1


def test_ocr_force_needs_an_engine(invoke, tmp_path, no_engine):
    make_pdf(tmp_path / "a.pdf", [["text"]])
    result = invoke("ingest", tmp_path / "a.pdf", "--ocr", "force")
    assert result.exit_code == 1
    assert "Error: --ocr force needs an OCR engine: install an OCR engine" in result.output


def test_an_engine_asked_for_that_is_missing_is_an_error(invoke, tmp_path, no_engine):
    make_pdf(tmp_path / "a.pdf", [["text"]])
    result = invoke("ingest", tmp_path / "a.pdf", "--ocr-engine", "tesseract")
    assert result.exit_code == 1
    assert ("Error: --ocr-engine tesseract: Tesseract with the 'eng' language data is not "
            "installed") in result.output
    result = invoke("ingest", tmp_path / "a.pdf", "--ocr-engine", "rapidocr")
    assert result.exit_code == 1
    assert "Error: --ocr-engine rapidocr: RapidOCR is not installed: pip install" in result.output
    # OCR off needs no engine at all
    assert invoke("ingest", tmp_path / "a.pdf", "--ocr-engine", "tesseract",
                  "--ocr", "off").exit_code == 0


@needs_rapidocr
def test_rapidocr_failing_to_load_is_a_page_warning(invoke, tmp_path, monkeypatch):
    """An engine that cannot start (a missing system library, say) costs only the page."""
    def broken(threads):
        raise OSError("libGL.so.1: cannot open shared object file")

    monkeypatch.setattr(ocr, "_rapidocr", broken)
    make_scanned_pdf(tmp_path / "scan.pdf")
    result, data = ingest_json(invoke, tmp_path / "scan.pdf", "--workers", "0",
                               "--ocr-engine", "rapidocr")
    assert result.exit_code == 3
    row = data["results"][0]
    assert row["status"] == "needs_ocr"
    assert row["warnings"] == ["page 1: OCR (rapidocr) failed: libGL.so.1: cannot open shared "
                               "object file"]


def test_auto_prefers_rapidocr_and_falls_back_to_tesseract(monkeypatch):
    monkeypatch.setattr(ocr, "rapidocr_installed", lambda: True)
    monkeypatch.setattr(ocr, "find_tessdata", lambda language="eng": "/tess")
    assert ocr.resolve_engine("auto", "eng") == (ocr.Engine("rapidocr"), None)
    assert ocr.resolve_engine("auto", "deu") == (ocr.Engine("tesseract", "/tess"), None)
    assert ocr.resolve_engine("tesseract", "eng") == (ocr.Engine("tesseract", "/tess"), None)
    monkeypatch.setattr(ocr, "rapidocr_installed", lambda: False)
    assert ocr.resolve_engine("auto", "eng") == (ocr.Engine("tesseract", "/tess"), None)


def test_lines_group_into_paragraphs_and_columns_stay_apart():
    h = 10.0

    def line(text, x, y, width=200, skew=0.0):
        return (text, [(x, y), (x + width, y + skew), (x + width, y + skew + h), (x, y + h)])

    lines = [line("Left one", 50, 100), line("Right one", 300, 101),
             line("left two", 50, 112), line("right two", 300, 113),
             line("Left new paragraph", 50, 140), line("Footer", 50, 400, 450)]
    blocks = ocr.group_lines(lines)
    assert [text for text, _ in blocks] == ["Left one\nleft two", "Right one\nright two",
                                            "Left new paragraph", "Footer"]
    assert blocks[0][1] == (50, 100, 250, 122)
    # a skewed scan: the right end of each line sits lower than the next line's left end
    skewed = [line("first line", 50, 100, skew=14), line("second line", 50, 112, skew=14),
              line("third line", 50, 124, skew=14)]
    assert ocr.group_lines(skewed)[0][0] == "first line\nsecond line\nthird line"
