"""CSV and TSV label files (the Hugging Face guides' layout).

Reading:

- the first non-blank row is the header (required); column names are matched without case
  or surrounding spaces;
- ``text`` holds the labelled text; ``path`` (alias ``sha256``) names a whole document by
  file path or sha256 hex digest. At least one of them is needed; a row may fill either.
  When both ``path`` and ``sha256`` columns exist, ``sha256`` goes to ``meta``;
- ``label`` (alias ``labels``) holds the class; for multi-label tasks several classes in
  one cell separated by ``multi_label_separator`` (default ``|``): ``cardio|neuro``;
- NER: a ``spans`` column (or ``label``) holding a JSON list of spans, either
  ``{"start": 0, "end": 5, "label": "ORG"}`` objects or ``[0, 5, "ORG"]`` triples, with
  character offsets into ``text``; ``[]`` for a text with no entities;
- every other named column goes to ``meta`` as a string (empty cells as ``""``);
- blank rows are skipped; an empty label cell (for a multi-label task: "none of the
  labels", ``[]``, counted in the warnings), a row with a different number of columns than
  the header, or bad quoting is an error naming the line;
- the delimiter is a tab for ``.tsv`` files or when the header row has tabs and no commas.

Writing: columns ``text`` (if any record has text), ``path`` (if any record has a path),
then ``label`` (``spans`` for NER, as compact JSON), then the records' meta keys in the
order first met. ``[]`` (multi-label "none of the labels") and a prediction's "no
answer" (``None``) are written as an empty label cell. Non-string meta values are written
as JSON. Lines end with ``\\n``;
open the file with ``newline=""``.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Iterable

from doctagger.errors import ImportFormatError, InvalidInputError, InvalidLabelError
from doctagger.formats.base import (LabelFile, LabelRecord, ValueProblem, normalize_class,
                                    normalize_classes, normalize_spans)


def _sniff_delimiter(text: str, name: str) -> str:
    if name.lower().endswith(".tsv"):
        return "\t"
    first = next((ln for ln in text.split("\n") if ln.strip()), "")
    return "\t" if "\t" in first and "," not in first else ","


def _expected(kind: str) -> str:
    if kind == "spans":
        return "text,spans (spans as JSON)"
    return "text,label (or path,label for whole documents)"


def read_csv(text: str, name: str, *, kind: str, separator: str = "|",
             delimiter: str | None = None) -> LabelFile:
    delimiter = delimiter or _sniff_delimiter(text, name)
    what = "tabs" if delimiter == "\t" else "commas"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[LabelRecord] = []
    header: list[str] | None = None
    text_col = path_col = label_col = None
    meta_cols: list[int] = []
    prev = 0
    try:
        for row in reader:
            line, prev = prev + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [h.strip() for h in row]
                text_col, path_col, label_col, meta_cols = _columns(header, name, line, kind)
                continue
            if len(row) != len(header):
                raise ImportFormatError(
                    name, line, f"expected {len(header)} columns ({','.join(header)}), found "
                    f"{len(row)}; quote fields that contain {what} or quotes")
            records.append(_record(row, line, name, kind, separator, header,
                                   text_col, path_col, label_col, meta_cols))
    except csv.Error as e:
        raise ImportFormatError(name, reader.line_num or 1,
                                f"bad CSV ({e}); quote fields that contain {what}, quotes "
                                "or line breaks, and double quotes inside them") from None
    if header is None:
        raise ImportFormatError(name, None, f"the file is empty; expected a header row "
                                f"{_expected(kind)} and one row per label")
    warnings = []
    empty = sum(1 for r in records if r.value == [])
    if empty and kind == "classes":
        warnings.append(f"{name}: {empty} row(s) with an empty {header[label_col]!r} cell "
                        "read as 'none of the labels' (multi-label); fill them in if that "
                        "is not what they mean")
    return LabelFile(records, format="csv", warnings=warnings)


def _columns(header: list[str], name: str, line: int, kind: str):
    lower = [h.lower() for h in header]
    seen = set()
    for h in lower:
        if h and h in seen:
            raise ImportFormatError(name, line, f"column {h!r} appears twice in the header; "
                                    "rename one of them")
        seen.add(h)

    def find(*names):
        for n in names:
            if n in lower:
                return lower.index(n)
        return None

    text_col = find("text")
    path_col = find("path", "sha256")
    if kind == "spans":
        label_col = find("spans", "label", "labels")
    else:
        label_col = find("label", "labels")
        if label_col is None and "spans" in lower:
            raise ImportFormatError(name, line, "this file has a 'spans' column (NER) but the "
                                    "task expects class labels; import it into an NER task, "
                                    "or give a 'label' column")
    if label_col is None or (text_col is None and path_col is None):
        found = ",".join(header) or "nothing"
        raise ImportFormatError(name, line, f"expected a header row with columns "
                                f"{_expected(kind)}, found {found}; rename the columns or "
                                "add the header row")
    used = {text_col, path_col, label_col}
    meta_cols = [i for i, h in enumerate(header) if i not in used and h]
    return text_col, path_col, label_col, meta_cols


def _record(row, line, name, kind, separator, header, text_col, path_col, label_col,
            meta_cols) -> LabelRecord:
    text = row[text_col] if text_col is not None else None
    path = row[path_col].strip() if path_col is not None else None
    text = text if text and text.strip() else None
    path = path or None
    if text is None and path is None:
        raise ImportFormatError(name, line, "this row has no text and no path; fill one in "
                                "or remove the row")
    raw = row[label_col].strip()
    col = header[label_col]
    if not raw and kind == "classes":  # "none of the labels", as `label` saves it
        return LabelRecord(line=line, value=[], text=text, path=path,
                           meta={header[i]: row[i] for i in meta_cols})
    if not raw:
        raise ImportFormatError(name, line, f"empty {col!r} cell; give every row a label or "
                                "remove the row")
    try:
        if kind == "class":
            if separator and separator in raw:
                raise ValueProblem(f"several labels {raw!r} (separated by {separator!r}) but "
                                   "the task is single-label; keep one, or use a "
                                   "multi-label task")
            value = normalize_class(raw)
        elif kind == "classes":
            parts = raw.split(separator) if separator else [raw]
            value = normalize_classes([p for p in parts if p.strip()])
        else:
            try:
                spans = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ValueProblem(f"the {col!r} cell is not valid JSON ({e.msg}); write spans "
                                   'as [{"start": 0, "end": 5, "label": "ORG"}] or '
                                   '[[0, 5, "ORG"]]') from None
            value = normalize_spans(spans, text)
    except ValueProblem as e:
        raise ImportFormatError(name, line, str(e)) from None
    meta = {header[i]: row[i] for i in meta_cols}
    return LabelRecord(line=line, value=value, text=text, path=path, meta=meta)


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def write_csv(records: Iterable[LabelRecord], fh, *, kind: str, separator: str = "|",
              delimiter: str = ",") -> int:
    records = list(records)
    has_text = any(r.text is not None for r in records)
    has_path = any(r.path is not None for r in records)
    label_col = "spans" if kind == "spans" else "label"
    cols = (["text"] if has_text else []) + (["path"] if has_path else []) + [label_col]
    reserved = {"text", "path", "label", "labels", "spans"} | (set() if has_path else {"sha256"})
    meta_keys: list[str] = []
    seen: set[str] = set()
    for r in records:
        for k in r.meta:
            if k in seen:
                continue
            if not isinstance(k, str) or not k.strip() or k.strip().lower() in reserved:
                raise InvalidInputError(f"cannot write the meta field {k!r} as a CSV column "
                                        "(it is empty or clashes with a label-file column); "
                                        "rename it or export as jsonl")
            if k.strip().lower() in {m.strip().lower() for m in meta_keys}:
                raise InvalidInputError(f"meta fields {k!r} and another differ only in case; "
                                        "rename one or export as jsonl")
            seen.add(k)
            meta_keys.append(k)
    w = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
    w.writerow(cols + meta_keys)
    for n, r in enumerate(records, 1):
        where = r.where(n)
        text = r.text if r.text is not None and r.text.strip() else None
        if text is None and not r.path:
            raise InvalidInputError(f"{where}: no text and no path; every exported record "
                                    "needs one")
        try:
            if kind == "class" and r.value is None:  # a prediction's "no answer"
                cell, bad = "", []
            elif kind == "class":
                cell = normalize_class(r.value)
                bad = [cell] if separator and separator in cell else []
            elif kind == "classes":
                names = normalize_classes(r.value)
                bad = [c for c in names if separator and separator in c]
                cell = separator.join(names)
            else:
                cell = json.dumps(normalize_spans(r.value, r.text), ensure_ascii=False,
                                  separators=(",", ":"))
                bad = []
        except ValueProblem as e:
            raise InvalidLabelError(f"{where}: {e}") from None
        if bad:
            raise InvalidLabelError(f"{where}: the label {bad[0]!r} contains the separator "
                                    f"{separator!r}; choose another --separator or export "
                                    "as jsonl")
        row = ([text or ""] if has_text else []) + ([r.path or ""] if has_path else [])
        w.writerow(row + [cell] + [_cell(r.meta.get(k)) for k in meta_keys])
    return len(records)
