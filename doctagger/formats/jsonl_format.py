"""JSON Lines label files, in Prodigy and doccano styles.

Reading, one JSON object a line (blank lines skipped; a file whose first character is
``[`` is read as one JSON array of such objects, line numbers still pointing at each
object's first line):

- the text: ``text``; or a whole document: ``path`` (alias ``sha256``; when both are
  present ``sha256`` goes to ``meta``);
- class labels (kinds ``class``/``classes``), the first key present of:
  ``label`` (a string, or a list: doccano puts ``["x"]``; a single-label task accepts a
  one-element list), ``labels``, ``accept`` (Prodigy choice: a list of option ids),
  ``cats`` (spaCy: ``{"A": 1.0, "B": 0.0}``, the labels scoring >= 0.5);
- spans (kind ``spans``), the first key present of: ``spans`` (Prodigy: objects with
  ``start``, ``end``, ``label``, other keys such as ``token_start`` dropped), ``entities``
  (doccano: ``[start, end, "LABEL"]`` triples or objects with ``start_offset``/
  ``end_offset``), ``label``/``labels`` (doccano: ``[[start, end, "LABEL"], ...]``).
  ``[]`` is a valid value (a text with no entities);
- Prodigy ``answer``: ``"reject"`` and ``"ignore"`` lines are skipped and counted in
  ``LabelFile.skipped`` (with a warning); ``"accept"`` or no answer is kept;
- every other key goes to ``meta`` unchanged (``id``, ``meta``, ``_input_hash``, ...).

Writing: ``{"text": ..., "path": ..., "label": ...}`` (``"spans"`` for NER; ``text`` and
``path`` only when set), then the meta keys in their order, ``ensure_ascii=False``.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

from doctagger.errors import ImportFormatError, InvalidInputError, InvalidLabelError
from doctagger.formats.base import (LabelFile, LabelRecord, ValueProblem, describe,
                                    normalize_value, normalize_written)
from doctagger.formats.encoding import split_lines

_WS = re.compile(r"[ \t\r\n]*")
_CLASS_KEYS = ("label", "labels", "accept", "cats")
_SPAN_KEYS = ("spans", "entities", "label", "labels")


def _bad_json(e: json.JSONDecodeError) -> str:
    return (f"invalid JSON ({e.msg} at column {e.colno}); each line must be one complete "
            "JSON object, with double-quoted keys and strings")


def _lines(text: str, name: str):
    for n, line in enumerate(split_lines(text), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise ImportFormatError(name, n, _bad_json(e)) from None


def _array(text: str, name: str):
    """Objects of a JSON array file, with the line each one starts on."""
    dec = json.JSONDecoder()
    i = _WS.match(text, 0).end() + 1  # past '['
    line, counted = 1, 0

    def line_at(pos):
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    i = _WS.match(text, i).end()
    if text.startswith("]", i):
        i += 1
    else:
        while True:
            try:
                obj, j = dec.raw_decode(text, i)
            except json.JSONDecodeError as e:
                raise ImportFormatError(name, e.lineno, _bad_json(e)) from None
            yield line_at(i), obj
            i = _WS.match(text, j).end()
            if text.startswith(",", i):
                i = _WS.match(text, i + 1).end()
                continue
            if text.startswith("]", i):
                i += 1
                break
            raise ImportFormatError(name, line_at(i), "invalid JSON array: expected ',' or "
                                    "']' after an object; or write one object a line (JSONL)")
    if text[i:].strip():
        raise ImportFormatError(name, line_at(_WS.match(text, i).end()),
                                "unexpected text after the end of the JSON array")


def _label(obj: dict, kind: str) -> tuple[str, Any]:
    if kind == "spans":
        for key in _SPAN_KEYS:
            if key in obj:
                return key, obj[key]
        raise ValueProblem('no spans: expected a "spans" list (Prodigy) or "entities"/'
                           '"label" [[start, end, "LABEL"], ...] (doccano); use [] for a '
                           "text with no entities")
    for key in _CLASS_KEYS:
        if key in obj:
            raw = obj[key]
            if key == "cats":
                if not isinstance(raw, dict):
                    raise ValueProblem('"cats" must be an object {"LABEL": score, ...}')
                raw = [k for k, v in raw.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0.5]
            return key, raw
    if "spans" in obj or "entities" in obj:
        raise ValueProblem("this record has NER spans but the task expects class labels; "
                           "import it into an NER task")
    raise ValueProblem('no label: expected a "label" field (or Prodigy "accept")')


def read_jsonl(text: str, name: str, *, kind: str) -> LabelFile:
    items = _array(text, name) if text.lstrip().startswith("[") else _lines(text, name)
    records: list[LabelRecord] = []
    skipped = 0
    for n, obj in items:
        if not isinstance(obj, dict):
            raise ImportFormatError(name, n, f"expected a JSON object {{...}}, found "
                                    f"{describe(obj)}; write one object a line")
        answer = obj.get("answer")
        if answer in ("reject", "ignore"):
            skipped += 1
            continue
        if answer not in (None, "accept"):
            raise ImportFormatError(name, n, f"unknown answer {describe(answer)}; expected accept, "
                                    "reject or ignore")
        text_v = obj.get("text")
        path_key = "path" if "path" in obj else "sha256" if "sha256" in obj else None
        path_v = obj[path_key] if path_key else None
        for key, v in (("text", text_v), (path_key, path_v)):
            if v is not None and not isinstance(v, str):
                raise ImportFormatError(name, n, f'"{key}" must be a string, found '
                                        f"{describe(v)}")
        text_v = text_v if text_v and text_v.strip() else None
        path_v = path_v.strip() if path_v and path_v.strip() else None
        if text_v is None and path_v is None:
            raise ImportFormatError(name, n, 'needs a non-empty "text" (or "path"/"sha256" '
                                    "to name a whole document); add it or remove the line")
        try:
            key, raw = _label(obj, kind)
            value = normalize_value(raw, kind, text_v)
        except ValueProblem as e:
            raise ImportFormatError(name, n, str(e)) from None
        consumed = {"text", path_key, key, "answer"}
        meta = {k: v for k, v in obj.items() if k not in consumed}
        records.append(LabelRecord(line=n, value=value, text=text_v, path=path_v, meta=meta))
    warnings = []
    if skipped:
        warnings.append(f"{name}: skipped {skipped} record(s) answered reject or ignore")
    return LabelFile(records, format="jsonl", skipped=skipped, warnings=warnings)


def write_jsonl(records: Iterable[LabelRecord], fh, *, kind: str) -> int:
    count = 0
    main = "spans" if kind == "spans" else "label"
    for n, r in enumerate(records, 1):
        where = r.where(n)
        obj: dict[str, Any] = {}
        if r.text is not None and r.text.strip():
            obj["text"] = r.text
        if r.path:
            obj["path"] = r.path
        if not obj:
            raise InvalidInputError(f"{where}: no text and no path; every exported record "
                                    "needs one")
        try:
            obj[main] = normalize_written(r.value, kind, r.text)
        except ValueProblem as e:
            raise InvalidLabelError(f"{where}: {e}") from None
        reserved = {"text", "path", "answer", main} | ({"sha256"} if not r.path else set())
        for k, v in r.meta.items():
            if k in reserved or not isinstance(k, str):
                raise InvalidInputError(f"{where}: the meta field {k!r} clashes with a "
                                        "label-file field; rename it")
            obj[k] = v
        fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        count += 1
    return count
