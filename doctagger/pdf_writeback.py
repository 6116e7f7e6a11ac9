"""Write tagged *copies* of the original PDFs; the originals are only ever read.

Each copy carries the task's document tags in its metadata (``keywords``: the tags as
``TASK=LABEL``, added to any keywords the file had; ``subject``: a one-line summary), and
every NER entity as a highlight annotation on the pages where it was found (located with
PyMuPDF's ``search_for`` on those pages; the annotation says the label, task and score).

Documents that cannot be copied are skipped with a one-line reason: text imported without
a file, files that are not PDFs, files gone or changed since they were ingested, and files
that need a password.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from doctagger.tasktypes import Task

if TYPE_CHECKING:
    from doctagger.index import Index

SUBJECT_PREFIX = "doctagger"
HIGHLIGHT_TITLE = "doctagger"
WRITABLE_METADATA = ("author", "producer", "creator", "title", "subject", "keywords",
                     "creationDate", "modDate", "trapped")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tagged_documents(index: Index, task: Task) -> list[dict]:
    """Documents that carry document tags for the task, with their tags (best first)."""
    docs = index.query(
        "select d.id, d.path, d.sha256, d.source, d.format from documents d where exists "
        "(select 1 from document_tags g where g.document_id = d.id and g.task_id = ?) "
        "order by d.id", [task.id])
    for doc in docs:
        doc["tags"] = index.query(
            "select g.label, g.score, g.pages, g.extra, g.model_id, m.version as model_version "
            "from document_tags g join models m on m.id = g.model_id "
            "where g.task_id = ? and g.document_id = ? order by g.score desc, g.label",
            [task.id, doc["id"]])
        for tag in doc["tags"]:
            tag["pages"] = json.loads(tag["pages"])
            tag["extra"] = json.loads(tag["extra"])
    return docs


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def entity_pages(index: Index, document_id: int, model_id: int) -> dict[tuple[str, str], set]:
    """(label, folded text) -> the pages where the model found that entity in the
    document: every mention, not only a tag's top supporting chunks."""
    found: dict[tuple[str, str], set] = {}
    rows = index.query(
        "select c.text, c.page, c.page_end, p.value from predictions p join chunks c on "
        "c.id = p.chunk_id where c.document_id = ? and p.model_id = ? and p.review = 0",
        [document_id, model_id])
    for row in rows:
        value = json.loads(row["value"])
        if not isinstance(value, list) or row["page"] is None:
            continue
        pages = range(row["page"], (row["page_end"] or row["page"]) + 1)
        for span in value:
            if isinstance(span, dict) and "start" in span:
                key = (str(span["label"]), _fold(row["text"][span["start"]:span["end"]]))
                found.setdefault(key, set()).update(pages)
    return found


def output_path(out_dir: Path, original: Path, document_id: int, used: set[Path]) -> Path:
    """``DIR/name.pdf``; ``name-ID.pdf`` when two originals share a name, and never the
    original itself."""
    candidate = out_dir / original.name
    if candidate.resolve() in used or candidate.resolve() == original.resolve():
        candidate = out_dir / f"{original.stem}-{document_id}{original.suffix}"
    used.add(candidate.resolve())
    return candidate


def _skip_reason(doc: dict) -> str | None:
    if doc["source"] != "file":
        return "imported text has no PDF file"
    path = Path(doc["path"])
    if (doc["format"] or path.suffix.lstrip(".")).lower() != "pdf":
        return f"not a PDF ({path.suffix or 'no suffix'}): only PDF copies can carry tags"
    if not path.is_file():
        return "the file is gone; re-ingest its folder"
    if doc["sha256"] and _sha256(path) != doc["sha256"]:
        return "the file changed since it was ingested; re-ingest and tag it again"
    return None


def write_copy(doc: dict, task: Task, out: Path,
               pages_of: dict[tuple[str, str], set] | None = None) -> dict:
    """One tagged copy: metadata, and highlights on the pages in ``pages_of`` (see
    :func:`entity_pages`; a tag's own pages when absent). Returns what was written."""
    from doctagger.extractors import import_pymupdf

    pymupdf = import_pymupdf()

    original = Path(doc["path"])
    classes = [t for t in doc["tags"] if not t["extra"].get("text")]
    entities = [t for t in doc["tags"] if t["extra"].get("text")]
    pdf = pymupdf.open(original)
    try:
        if pdf.needs_pass:
            return {"skipped": "the file needs a password"}
        meta = dict(pdf.metadata or {})
        keywords = [k.strip() for k in (meta.get("keywords") or "").replace(";", ",").split(",")
                    if k.strip()]
        for tag in classes:
            keyword = f"{task.name}={tag['label']}"
            if keyword not in keywords:
                keywords.append(keyword)
        summary = ", ".join(f"{t['label']} ({t['score']:.2f})" for t in classes)
        version = doc["tags"][0]["model_version"] if doc["tags"] else None
        subject = f"{SUBJECT_PREFIX} {task.name} (model v{version}): " + (
            summary or "no class tags")
        if entities:
            subject += f"; {len(entities)} entities highlighted"
        meta["keywords"] = ", ".join(keywords)
        meta["subject"] = subject
        pdf.set_metadata({k: v for k, v in meta.items() if k in WRITABLE_METADATA and v})
        highlights = 0
        for tag in entities:
            text = tag["extra"]["text"]
            pages = (pages_of or {}).get((tag["label"], _fold(text)))
            for page_no in sorted(pages or tag["pages"] or [tag["extra"].get("page")]):
                if not page_no or not 1 <= int(page_no) <= pdf.page_count:
                    continue
                page = pdf[int(page_no) - 1]
                for quad in page.search_for(text, quads=True):
                    annot = page.add_highlight_annot(quad)
                    annot.set_info(title=HIGHLIGHT_TITLE,
                                   content=f"{tag['label']} ({task.name}, score "
                                           f"{tag['score']:.2f})")
                    annot.update()
                    highlights += 1
        out.parent.mkdir(parents=True, exist_ok=True)
        pdf.save(str(out), garbage=1, deflate=True)
    finally:
        pdf.close()
    return {"path": str(out), "keywords": meta["keywords"], "subject": subject,
            "highlights": highlights}


def write_pdfs(index: Index, task: Task, out_dir: str | Path) -> dict:
    """Tagged copies of every PDF that has document tags for the task, into ``out_dir``.

    Returns {"written": [{document_id, original, path, keywords, subject, highlights}],
    "skipped": [{document_id, path, reason}]}."""
    out_dir = Path(out_dir)
    written, skipped = [], []
    used: set[Path] = set()
    for doc in tagged_documents(index, task):
        reason = _skip_reason(doc)
        result = None
        if reason is None:
            original = Path(doc["path"])
            pages_of = {}
            for model_id in {t["model_id"] for t in doc["tags"] if t["extra"].get("text")}:
                pages_of.update(entity_pages(index, doc["id"], model_id))
            result = write_copy(doc, task, output_path(out_dir, original, doc["id"], used),
                                pages_of)
            reason = result.get("skipped")
        if reason:
            skipped.append({"document_id": doc["id"], "path": doc["path"], "reason": reason})
            continue
        written.append({"document_id": doc["id"], "original": doc["path"], **result})
    return {"written": written, "skipped": skipped}


__all__ = ["write_pdfs", "tagged_documents", "write_copy", "entity_pages"]
