"""Read commands: docs, show, status, search."""
from __future__ import annotations

import json

import click

from doctagger.cli.common import echo_json, echo_table, get_index, json_option
from doctagger.errors import DoctaggerError, InvalidInputError


def parse_tag_filter(value: str, option: str = "--tag") -> tuple[str, str]:
    if "=" not in value:
        raise click.BadParameter(f"expected TASK=LABEL, got {value!r}", param_hint=option)
    task, label = value.split("=", 1)
    if not task or not label:
        raise click.BadParameter(f"expected TASK=LABEL, got {value!r}", param_hint=option)
    return task, label


def parse_entity_filter(value: str) -> tuple[str, str, str | None]:
    """``TASK=LABEL`` or ``TASK=LABEL:TEXT`` -> (task, label, text or None)."""
    task, rest = parse_tag_filter(value, "--entity")
    label, _, text = rest.partition(":")
    if not label:
        raise click.BadParameter(f"expected TASK=LABEL or TASK=LABEL:TEXT, got {value!r}",
                                 param_hint="--entity")
    return task, label, text.strip() or None


def _check_label(index, task: dict, label: str, option: str) -> None:
    """A filter's label must be one of the task's (or one its tags carry): a typo would
    otherwise match nothing and look like an answer."""
    labels = json.loads(task["labels"] or "[]")
    if label in labels or index.scalar(
            "select 1 from document_tags where task_id = ? and label = ? limit 1",
            [task["id"], label]):
        return
    close = [name for name in labels if name.lower() == label.lower()]
    hint = f"; did you mean {option} {task['name']}={close[0]}?" if close else ""
    raise InvalidInputError(f"task '{task['name']}' has no label {label!r} (labels: "
                            f"{', '.join(labels) or 'none'}){hint}")


def _check_entity_task(task: dict) -> None:
    from doctagger.plugins import get_task_type

    try:
        kind = getattr(get_task_type(task["type"]), "value_kind", "class")
    except DoctaggerError:  # its plugin is not loaded: the tags alone decide
        return
    if kind != "spans":
        raise InvalidInputError(f"task '{task['name']}' ({task['type']}) has no entities; "
                                f"filter it with --tag {task['name']}=LABEL")


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{' '.join(escaped.split())}%"


def _chunk_labels(task: dict) -> bool:
    """Whether a task's predictions are labels of single chunks (a chunk-level task whose
    type predicts labels, not spans)."""
    if task["level"] == "document":
        return False
    from doctagger.plugins import get_task_type

    try:
        return getattr(get_task_type(task["type"]), "value_kind", "class") != "spans"
    except DoctaggerError:  # its plugin is not loaded: filter by document tags only
        return False


def document_tag_condition(index, tags: tuple[str, ...], min_score: float | None,
                           alias: str = "d", entities: tuple[str, ...] = (),
                           chunk_alias: str | None = None) -> tuple[str, list]:
    """SQL condition (on documents `alias`) for the filters; all must hold.

    - ``--tag TASK=LABEL``: the document carries that tag; with ``chunk_alias``, for a
      chunk-level task of labels (not spans), only the chunks that the tag's model itself
      labelled LABEL (not queued for review; ``min_score`` on that label's score) match;
    - ``--entity TASK=LABEL[:TEXT]``: the document has an entity of that label (whose
      text contains TEXT, case-insensitively); with ``chunk_alias``, only the chunks in
      which the tag's model found such an entity match;
    - ``min_score``: only tags (and entities) scored at least this count.
    """
    parts, params = [], []
    score = " and t.score >= ?" if min_score is not None else ""
    for value in tags:
        task_name, label = parse_tag_filter(value)
        task = index.task_row(task_name)
        _check_label(index, task, label, "--tag")
        cond = (f"exists (select 1 from document_tags t where t.document_id = {alias}.id "
                f"and t.task_id = ? and t.label = ?{score}")
        params += [task["id"], label] + ([min_score] if min_score is not None else [])
        if chunk_alias and _chunk_labels(task):
            cond += (f" and exists (select 1 from predictions p where p.chunk_id = "
                     f"{chunk_alias}.id and p.model_id = t.model_id and p.review = 0 "
                     f"and (p.value = json_quote(t.label) or (json_type(p.value) = 'array' "
                     f"and exists (select 1 from json_each(p.value) v "
                     f"where v.value = t.label)))")
            if min_score is not None:
                cond += (" and coalesce((select ps.value from json_each(p.scores) ps "
                         "where ps.key = t.label), p.score) >= ?")
                params.append(min_score)
            cond += ")"
        parts.append(cond + ")")
    for value in entities:
        task_name, label, text = parse_entity_filter(value)
        task = index.task_row(task_name)
        _check_entity_task(task)
        _check_label(index, task, label, "--entity")
        cond = (f"exists (select 1 from document_tags t where t.document_id = {alias}.id "
                f"and t.task_id = ? and t.label = ? "
                f"and json_extract(t.extra, '$.text') is not null{score}")
        params += [task["id"], label] + ([min_score] if min_score is not None else [])
        if text:
            cond += " and json_extract(t.extra, '$.text') like ? escape '\\'"
            params.append(_like(text))
        if chunk_alias:  # the chunks whose prediction (by the tag's model) has the entity
            c = chunk_alias
            start, end = "json_extract(s.value, '$.start')", "json_extract(s.value, '$.end')"
            cond += (f" and exists (select 1 from predictions p, json_each(p.value) s "
                     f"where p.chunk_id = {c}.id and p.model_id = t.model_id "
                     f"and p.review = 0 and json_extract(s.value, '$.label') = t.label")
            if text:
                cond += (f" and substr({c}.text, {start} + 1, {end} - {start}) "
                         f"like ? escape '\\'")
                params.append(_like(text))
            cond += ")"
        parts.append(cond + ")")
    return " and ".join(parts), params


@click.command()
@click.option("--failed", is_flag=True, help="Only documents that could not be ingested "
              "(failed, encrypted, needs OCR, empty), with the reason.")
@click.option("--tag", "tags", multiple=True, metavar="TASK=LABEL",
              help="Only documents tagged LABEL for TASK (repeat to require several).")
@click.option("--entity", "entities", multiple=True, metavar="TASK=LABEL[:TEXT]",
              help="Only documents with an entity of LABEL for TASK, whose text contains "
                   "TEXT when given (case-insensitive).")
@click.option("--min-score", type=click.FloatRange(0, 1),
              help="With --tag/--entity: only tags scored at least this (0 to 1).")
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@json_option
def docs(failed, tags, entities, min_score, limit, json_):
    """List the documents in the index.

    \b
    Examples:
      doctagger docs
      doctagger docs --failed
      doctagger docs --tag topic=cardiovascular --json
      doctagger docs --entity people=ORG:acme --min-score 0.8
    """
    index = get_index()
    where, params = ["1"], []
    if failed:
        where.append("d.status != 'ok'")
    if tags or entities:
        cond, cond_params = document_tag_condition(index, tags, min_score, entities=entities)
        where.append(cond)
        params += cond_params
    sql = ("select d.id, d.path, d.title, d.author, d.pages, d.chunk_count as chunks, d.status, "
           "d.error, d.sha256, d.source, d.ingested_at, d.ocr_pages, "
           f"{_OCR_PAGES_SQL} as ocr from documents d where "
           + " and ".join(where) + " order by d.path")
    if limit:
        sql += f" limit {int(limit)}"
    rows = index.query(sql, params)
    for row in rows:
        row["ocr"] = json.loads(row["ocr"] or "[]")
    if json_:
        echo_json(rows)
        return
    if not rows:
        click.echo("No documents." if not failed else "No failed documents.", err=True)
        return
    columns = ["id", "status", "pages", "chunks", "path"] + (["error"] if failed else ["title"])
    echo_table(rows, columns, widths={"path": 60, "title": 40, "error": 80})


#: a document's OCRed pages as JSON [{"page": 2, "engine": "rapidocr"}, ...]
_OCR_PAGES_SQL = ("(select json_group_array(json_object('page', p.page, 'engine', "
                  "p.ocr_engine)) from (select page, ocr_engine from pages where document_id "
                  "= d.id and ocr = 1 order by page) p)")


@click.command()
@click.argument("doc")
@click.option("--text/--no-text", "full_text", default=False,
              help="Print each chunk's whole text instead of its first line.")
@json_option
def show(doc, full_text, json_):
    """Show one document: metadata, chunks with pages, labels, predictions and tags.

    DOC is a document id, a path, a file name or a sha256 prefix.

    \b
    Examples:
      doctagger show 3
      doctagger show reports/q3.pdf --text
    """
    index = get_index()
    row = index.document(doc)
    row["ocr"] = json.loads(index.scalar(
        f"select {_OCR_PAGES_SQL} from documents d where d.id = ?", [row["id"]]) or "[]")
    chunks = index.chunks(row["id"])
    labels = index.query(
        "select t.name as task, l.target, l.chunk_id, l.value, l.source, l.updated_at "
        "from labels l join tasks t on t.id = l.task_id where l.document_id = ? "
        "order by t.name, l.chunk_id", [row["id"]])
    tags = index.query(
        "select t.name as task, g.label, g.score, m.version as model_version, g.pages, "
        "g.chunks, g.extra from document_tags g join tasks t on t.id = g.task_id "
        "join models m on m.id = g.model_id where g.document_id = ? "
        "order by t.name, g.score desc", [row["id"]])
    predictions = index.query(
        "select t.name as task, p.chunk_id, p.value, p.score, m.version as model_version, "
        "p.review from predictions p join tasks t on t.id = p.task_id "
        "join models m on m.id = p.model_id join chunks c on c.id = p.chunk_id "
        "where c.document_id = ? and (t.active_model_id is null or p.model_id = t.active_model_id) "
        "order by t.name, c.seq", [row["id"]])
    for item in labels + tags + predictions:
        for key in ("value", "pages", "chunks", "extra"):
            if key in item and isinstance(item[key], str):
                item[key] = json.loads(item[key])
    if json_:
        for c in chunks:
            c["bbox"] = json.loads(c["bbox"]) if c["bbox"] else None
        echo_json({"document": row, "chunks": chunks, "labels": labels, "tags": tags,
                   "predictions": predictions})
        return
    for key in ("id", "path", "title", "author", "pages", "status", "error", "sha256",
                "ocr_pages", "ingested_at"):
        if row.get(key) not in (None, ""):
            click.echo(f"{key + ':':13} {row[key]}")
        if key == "ocr_pages" and row["ocr"]:
            engines: dict[str, list] = {}
            for p in row["ocr"]:
                engines.setdefault(p["engine"] or "unknown", []).append(str(p["page"]))
            click.echo(f"{'OCR:':13} " + "; ".join(
                f"page{'s' if len(pages) > 1 else ''} {', '.join(pages)} read by {engine}"
                for engine, pages in engines.items()))
    if tags:
        click.echo("\nTags:")
        for t in tags:
            click.echo("  " + _tag_line(t))
    if labels:
        click.echo("\nLabels:")
        for lab in labels:
            target = "document" if lab["target"] == "document" else (
                f"chunk {lab['chunk_id']}" if lab["chunk_id"] else "orphaned chunk label")
            click.echo(f"  {lab['task']}: {json.dumps(lab['value'], ensure_ascii=False)} "
                       f"({target}, {lab['source']})")
    by_chunk: dict[int, list] = {}
    for p in predictions:
        by_chunk.setdefault(p["chunk_id"], []).append(p)
    click.echo(f"\nChunks ({len(chunks)}):")
    for c in chunks:
        pages = f"p{c['page']}" if c["page_end"] in (None, c["page"]) else f"p{c['page']}-{c['page_end']}"
        text = c["text"] if full_text else " ".join(c["text"].split())[:100]
        click.echo(f"  [{c['id']}] {pages} ({c['tokens']} tok) {text}")
        for p in by_chunk.get(c["id"], []):
            shown = ("(no answer)" if p["value"] is None
                     else json.dumps(p["value"], ensure_ascii=False))
            click.echo(f"      -> {p['task']}: {shown} "
                       f"({p['score']:.2f}, v{p['model_version']}{', review' if p['review'] else ''})")


def _tag_line(t: dict) -> str:
    """``topic=cardio  score 0.94  model v2  pages 1, 3 (chunks 12, 40)``; entities add
    their text and how often they occur."""
    what = f"{t['task']}={t['label']}"
    extra = t.get("extra") or {}
    if extra.get("text"):
        what += f" {extra['text']!r}"
        if extra.get("count", 1) > 1:
            what += f" x{extra['count']}"
    pages = ", ".join(str(p) for p in t["pages"][:8]) + (" …" if len(t["pages"]) > 8 else "")
    chunks = ", ".join(str(c) for c in t["chunks"][:3])
    return (f"{what}  score {t['score']:.2f}  model v{t['model_version']}  "
            f"pages {pages or '-'}" + (f" (chunks {chunks})" if chunks else ""))


@click.command()
@json_option
def status(json_):
    """Where the index is and what it holds: counts, tasks, active models.

    \b
    Example:
      doctagger status
    """
    index = get_index()
    counts = index.counts()
    by_status = index.query("select status, count(*) as n from documents group by status "
                            "order by status")
    tasks = index.query(
        "select t.name, t.type, t.level, t.multi_label, "
        "(select count(*) from labels l where l.task_id = t.id) as labels, "
        "(select count(*) from labels l where l.task_id = t.id and l.target = 'chunk' "
        " and l.chunk_id is null) as orphaned, "
        "m.version as active_version from tasks t left join models m on m.id = t.active_model_id "
        "order by t.name")
    data = {"index": str(index.path.resolve()), "database": str(index.db_path.resolve()),
            **counts, "documents_by_status": {r["status"]: r["n"] for r in by_status},
            "tasks_detail": tasks}
    if json_:
        echo_json(data)
        return
    click.echo(f"Index:      {data['index']}")
    click.echo(f"Documents:  {counts['documents']} ("
               + ", ".join(f"{n} {s}" for s, n in data["documents_by_status"].items()) + ")"
               if counts["documents"] else "Documents:  0")
    click.echo(f"Pages:      {counts['pages']}")
    click.echo(f"Chunks:     {counts['chunks']}")
    click.echo(f"Labels:     {counts['labels']}")
    if counts["orphaned_labels"]:
        click.echo(f"            {counts['orphaned_labels']} orphaned: their chunk changed on "
                   "re-ingest and no chunk with the same text was found ('doctagger show' lists them)")
    click.echo(f"Models:     {counts['models']}")
    click.echo(f"Predictions: {counts['predictions']}, document tags: {counts['document_tags']}")
    if tasks:
        click.echo("\nTasks:")
        for t in tasks:
            active = f"v{t['active_version']}" if t["active_version"] else "no model yet"
            click.echo(f"  {t['name']} ({t['type']}, {t['level']}"
                       f"{', multi-label' if t['multi_label'] else ''}): {t['labels']} labels, "
                       f"{active}")


@click.command()
@click.argument("text", required=False)
@click.option("--tag", "tags", multiple=True, metavar="TASK=LABEL",
              help="Only chunks tagged LABEL for TASK: for a chunk-level task, chunks the "
                   "model labelled LABEL; for a document-level one, chunks of documents "
                   "tagged LABEL (repeat to require several).")
@click.option("--entity", "entities", multiple=True, metavar="TASK=LABEL[:TEXT]",
              help="Only chunks where an entity of LABEL for TASK was found, whose text "
                   "contains TEXT when given (case-insensitive).")
@click.option("--min-score", type=click.FloatRange(0, 1),
              help="With --tag/--entity: only tags scored at least this (0 to 1).")
@click.option("--limit", type=int, default=20, show_default=True, help="At most this many results.")
@json_option
def search(text, tags, entities, min_score, limit, json_):
    """Full-text search over chunks, best matches first.

    TEXT uses SQLite FTS5 syntax ("exact phrase", OR, NOT, prefix*); anything that is not
    valid syntax is searched as plain words.

    \b
    Examples:
      doctagger search "myocardial infarction"
      doctagger search tumor --tag topic=neoplasms --json
      doctagger search --entity people=ORG:acme --min-score 0.8
    """
    index = get_index()
    if not text and not tags and not entities:
        raise InvalidInputError("give TEXT to search for, or a filter such as --tag TASK=LABEL")
    where, params = "", []
    if tags or entities:
        where, params = document_tag_condition(index, tags, min_score, entities=entities,
                                               chunk_alias="c")
    rows = index.search(text, limit=limit, where=where, params=params)
    if json_:
        echo_json(rows)
        return
    if not rows:
        click.echo("No matches.", err=True)
        return
    for r in rows:
        click.echo(f"{r['path']}  p{r['page']}  (doc {r['document_id']}, chunk {r['chunk_id']})")
        click.echo(f"    {' '.join(r['snippet'].split())}")


COMMANDS = [docs, show, status, search]
