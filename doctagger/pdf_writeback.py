"""Write tagged *copies* of the original PDFs; the originals are only ever read.

Each copy carries the task's document tags in its metadata (``keywords``: the tags as
``TASK=LABEL``, added to any keywords the file had; ``subject``: a one-line summary), and
each mention of an NER entity as a highlight annotation: located with PyMuPDF's
``search_for`` on its chunk's page, among the hits inside the chunk's bounding box, the one
at the mention's place in the chunk (:func:`entity_mentions`, :func:`locate`); the
annotation says the label, task and score.

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
NO_FILE = "imported text has no PDF file"  # the skip reason of a text imported as labels
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


def _pattern(surface: str):
    """A regex for an entity's text as PDF text search finds it: case-insensitive, any
    run of white space for a space."""
    import re

    return re.compile(r"\s+".join(map(re.escape, surface.split())), re.IGNORECASE)


def _occurrences(text: str, surface: str, before: int | None = None) -> int:
    """How many times ``surface`` occurs in ``text`` (starting before ``before``)."""
    return sum(1 for m in _pattern(surface).finditer(text)
               if before is None or m.start() < before)


def entity_mentions(index: Index, document_id: int, model_id: int,
                    keys: set[tuple[str, str]] | None = None) -> list[dict]:
    """Every mention of an entity the model found in the document (not under review), as
    ``{label, key, text, page, bbox, nth, expected, others}``: where to look for it in the
    PDF. ``key`` is (label, folded text); only ``keys`` are kept when given.

    A mention is looked for on its chunk's page, among the text search hits inside the
    chunk's bounding box (``bbox``). Chunks cut from one long paragraph share its box, so
    ``nth`` counts the occurrences of the text before the mention in those chunks, in
    order, and ``expected`` all of them there: the hit to highlight is the ``nth``.
    ``others``: boxes of the page's other chunks that contain the text (a hit inside one
    of them belongs to that chunk). A chunk without a box counts in its page's text."""
    chunks = index.query(
        "select c.id, c.seq, c.page, c.text, c.bbox, c.char_start, p.value from chunks c "
        "left join predictions p on p.chunk_id = c.id and p.model_id = ? and p.review = 0 "
        "where c.document_id = ? order by c.seq", [model_id, document_id])
    by_page: dict[int, list[dict]] = {}
    for chunk in chunks:
        by_page.setdefault(chunk["page"], []).append(chunk)
    page_texts: dict[int, str | None] = {}
    mentions = []
    for chunk in chunks:
        value = json.loads(chunk["value"]) if chunk["value"] else None
        if not isinstance(value, list) or chunk["page"] is None:
            continue
        for span in value:
            if not isinstance(span, dict) or "start" not in span:
                continue
            start, end = int(span["start"]), int(span["end"])
            surface = " ".join(chunk["text"][start:end].split())
            key = (str(span["label"]), _fold(surface))
            if not surface or (keys is not None and key not in keys):
                continue
            mention = {"label": key[0], "key": key, "text": surface, "page": chunk["page"],
                       "chunk_id": chunk["id"], "bbox": None, "others": []}
            if chunk["bbox"]:
                mention["bbox"] = json.loads(chunk["bbox"])
                region = [c for c in by_page[chunk["page"]] if c["bbox"] == chunk["bbox"]]
                before = [c for c in region if c["seq"] < chunk["seq"]]
                mention["nth"] = (sum(_occurrences(c["text"], surface) for c in before)
                                  + _occurrences(chunk["text"], surface, start))
                mention["expected"] = sum(_occurrences(c["text"], surface) for c in region)
                mention["others"] = [json.loads(c["bbox"]) for c in by_page[chunk["page"]]
                                     if c["bbox"] and c["bbox"] != chunk["bbox"]
                                     and _occurrences(c["text"], surface)]
            else:  # no box: count in the page text
                if chunk["page"] not in page_texts:
                    page_texts[chunk["page"]] = index.scalar(
                        "select text from pages where document_id = ? and page = ?",
                        [document_id, chunk["page"]])
                page_text = page_texts[chunk["page"]] or chunk["text"]
                offset = chunk["char_start"]
                if offset is None or page_text[offset:offset + len(chunk["text"])] != chunk["text"]:
                    offset = max(page_text.find(chunk["text"]), 0)
                mention["nth"] = _occurrences(page_text, surface, offset + start)
                mention["expected"] = _occurrences(page_text, surface)
            mentions.append(mention)
    return mentions


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
        return NO_FILE
    path = Path(doc["path"])
    if (doc["format"] or path.suffix.lstrip(".")).lower() != "pdf":
        return f"not a PDF ({path.suffix or 'no suffix'}): only PDF copies can carry tags"
    if not path.is_file():
        return "the file is gone; re-ingest its folder"
    if doc["sha256"] and _sha256(path) != doc["sha256"]:
        return "the file changed since it was ingested; re-ingest and tag it again"
    return None


def _inside(rect, box, margin: float = 2.0) -> bool:
    """Whether a search hit's centre lies in a chunk's box ([x0, y0, x1, y1])."""
    x, y = (rect.x0 + rect.x1) / 2, (rect.y0 + rect.y1) / 2
    return (box[0] - margin <= x <= box[2] + margin) and (box[1] - margin <= y <= box[3] + margin)


def group_hits(page, quads: list, text: str) -> list[list]:
    """``page.search_for(text, quads=True)`` gives one quad per line of a hit, so a text
    that wraps onto the next line ("New" / "York") comes back in pieces: put the pieces of
    each occurrence together (a piece's own text, read back from the page, tells how much
    of ``text`` it holds)."""
    if len(text.split()) < 2:  # one word never wraps (hyphenation aside): a quad a hit
        return [[q] for q in quads]
    want = len(_fold(text).replace(" ", ""))
    groups, current, got = [], [], 0
    for quad in quads:
        current.append(quad)
        got += len(_fold(page.get_textbox(_middle(quad.rect))).replace(" ", ""))
        if got >= want:
            groups.append(current)
            current, got = [], 0
    if current:
        groups.append(current)
    return groups


def _middle(rect):
    """The middle band of a hit's rectangle: the rectangle itself reaches into the lines
    above and below (ascenders, descenders), whose text would count too."""
    band = (rect.y1 - rect.y0) * 0.3
    return type(rect)(rect.x0 + 0.5, rect.y0 + band, rect.x1 - 0.5, rect.y1 - band)


def locate(page, mention: dict, hits: list[list]) -> list | None:
    """The search hit of ``mention`` (its quads: see :func:`group_hits`) among ``hits``,
    all of its text's hits on its page; None when it cannot be told. See
    :func:`entity_mentions`."""
    box = mention.get("bbox")
    if box:
        hits = [g for g in hits if _inside(g[0].rect, box)]
        if len(hits) > mention["expected"]:  # hits of other chunks whose box overlaps
            hits = [g for g in hits
                    if not any(_inside(g[0].rect, other, 0) for other in mention["others"])]
    nth = mention.get("nth", 0)
    return hits[nth] if nth < len(hits) else None


def write_copy(doc: dict, task: Task, out: Path, mentions: list[dict] | None = None) -> dict:
    """One tagged copy: metadata, and a highlight on each mention in ``mentions`` (see
    :func:`entity_mentions`: each mention is highlighted once, where it is in its chunk).
    Returns what was written: ``highlights`` (annotations added) and
    ``entities_highlighted`` (entity tags with at least one)."""
    from doctagger.extractors import import_pymupdf

    pymupdf = import_pymupdf()

    original = Path(doc["path"])
    classes = [t for t in doc["tags"] if not t["extra"].get("text")]
    entities = {(t["label"], _fold(t["extra"]["text"])): t
                for t in doc["tags"] if t["extra"].get("text")}
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
        highlights, found, done = 0, set(), set()
        searched: dict[tuple[int, str], list] = {}
        for mention in mentions or []:
            tag = entities.get(mention["key"])
            page_no = mention["page"]
            if tag is None or not page_no or not 1 <= int(page_no) <= pdf.page_count:
                continue
            page = pdf[int(page_no) - 1]
            if (page_no, mention["text"]) not in searched:
                searched[page_no, mention["text"]] = group_hits(
                    page, page.search_for(mention["text"], quads=True), mention["text"])
            quads = locate(page, mention, searched[page_no, mention["text"]])
            spot = quads and (page_no, tuple(round(v, 1) for v in quads[0].rect))
            if quads is None or spot in done:
                continue
            done.add(spot)
            annot = page.add_highlight_annot(quads)
            annot.set_info(title=HIGHLIGHT_TITLE,
                           content=f"{tag['label']} ({task.name}, score {tag['score']:.2f})")
            annot.update()
            highlights += 1
            found.add(mention["key"])
        summary = ", ".join(f"{t['label']} ({t['score']:.2f})" for t in classes)
        version = doc["tags"][0]["model_version"] if doc["tags"] else None
        subject = f"{SUBJECT_PREFIX} {task.name} (model v{version}): " + (
            summary or "no class tags")
        if entities:
            subject += (f"; {_count(len(found), 'entity', 'entities')} highlighted "
                        f"({_count(highlights, 'highlight')})")
            if len(found) < len(entities):
                subject += f", {len(entities) - len(found)} not found in the PDF text"
        meta["keywords"] = ", ".join(keywords)
        meta["subject"] = subject
        pdf.set_metadata({k: v for k, v in meta.items() if k in WRITABLE_METADATA and v})
        out.parent.mkdir(parents=True, exist_ok=True)
        pdf.save(str(out), garbage=1, deflate=True)
    finally:
        pdf.close()
    return {"path": str(out), "keywords": meta["keywords"], "subject": subject,
            "highlights": highlights, "entities_highlighted": len(found)}


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


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
            mentions = []
            keys = {(t["label"], _fold(t["extra"]["text"]))
                    for t in doc["tags"] if t["extra"].get("text")}
            for model_id in {t["model_id"] for t in doc["tags"] if t["extra"].get("text")}:
                mentions.extend(entity_mentions(index, doc["id"], model_id, keys))
            result = write_copy(doc, task, output_path(out_dir, original, doc["id"], used),
                                mentions)
            reason = result.get("skipped")
        if reason:
            skipped.append({"document_id": doc["id"], "path": doc["path"], "reason": reason})
            continue
        written.append({"document_id": doc["id"], "original": doc["path"], **result})
    return {"written": written, "skipped": skipped}


__all__ = ["write_pdfs", "tagged_documents", "write_copy", "entity_mentions", "locate",
           "NO_FILE"]
