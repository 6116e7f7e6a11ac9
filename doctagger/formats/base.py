"""Records, the result object, and label-value checks shared by every format.

Label values follow the project conventions (see :mod:`doctagger.tasktypes`):

- kind ``"class"``: a ``str`` class name;
- kind ``"classes"`` (multi-label): a sorted, de-duplicated ``list[str]``; ``[]`` is a
  valid value, "none of the labels applies" (what ``label``'s ``0`` saves);
- kind ``"spans"`` (NER): a ``list`` of ``{"start": int, "end": int, "label": str}``,
  character offsets into the text, end exclusive, sorted by start, never overlapping.

Writers also take a prediction's "no answer" (``None``, what a rule-based task type may
predict) for kind ``"class"`` and write it as JSON ``null`` or an empty CSV cell; readers
refuse it, as an empty label, since a label always has an answer.

The ``normalize_*`` helpers raise :class:`ValueProblem` (a plain ``ValueError``) with a
one-line message; readers turn it into ``ImportFormatError`` with the line number, writers
into ``InvalidLabelError``. Messages describe a wrong value as the JSON the user wrote
(:func:`describe`: ``null``, ``a number 3``, ``a list [1, 2]``), never as a Python type.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from doctagger.errors import InvalidInputError

KINDS = ("class", "classes", "spans")


@dataclass
class LabelRecord:
    """One labelled item of a label file."""

    line: int  # 1-based line of the record in the file (first token line for CoNLL)
    value: Any  # per the conventions above
    text: str | None = None  # the text labelled (None when the record names a document)
    path: str | None = None  # document records: a file path or a sha256 hex digest
    meta: dict = field(default_factory=dict)  # any extra fields ("id", "score", ...)
    # CoNLL: the line of each span's first token, parallel to ``value`` (see problem_line)
    span_lines: list[int] | None = field(default=None, compare=False)
    # where the record comes from, for writers' messages ("/d/a.pdf, page 3, chunk 12");
    # not written. Without it a message says "record N".
    origin: str | None = field(default=None, compare=False)

    def where(self, n: int) -> str:
        """How a message names this record, the ``n``-th written."""
        if self.origin:
            return self.origin
        return f"record {n}" + (f" (line {self.line})" if self.line else "")


def problem_line(record: LabelRecord, check: Callable[[Any], Any]) -> int:
    """The line to name when ``check`` (e.g. a task type's ``validate``) refuses
    ``record.value``: for a CoNLL record, the line of the first span that ``check`` refuses
    on its own (the token whose tag is wrong), else ``record.line``."""
    lines = record.span_lines
    if lines and isinstance(record.value, list) and len(lines) == len(record.value):
        for span, line in zip(record.value, lines):
            try:
                check([span])
            except Exception:  # noqa: BLE001 - any refusal names this span
                return line
    return record.line


class LabelFile(list):
    """What :func:`doctagger.formats.read_labels` returns: a ``list`` of :class:`LabelRecord`
    with what was learned while reading the file as attributes.

    - ``path``: the file read (str);
    - ``format``: ``"csv"``, ``"jsonl"`` or ``"conll"``;
    - ``encoding``: ``"utf-8"``, ``"utf-8-sig"`` (a BOM was stripped), ``"utf-16"``,
      ``"cp1252"`` or ``"latin-1"`` (the last two: the file was not valid UTF-8);
    - ``scheme``: CoNLL only, the tagging scheme detected: ``"BIO"``, ``"IOB1"``, ``"IO"``
      or ``"BIOES"`` (``None`` for other formats);
    - ``skipped``: records deliberately left out (Prodigy ``answer: reject/ignore``);
    - ``warnings``: one-line messages the caller should show the user (encoding fallback,
      skipped records, lenient tag repairs, every record skipped).

    It compares equal to a plain list of the same records.
    """

    def __init__(self, records=(), *, path: str | None = None, format: str | None = None,
                 encoding: str = "utf-8", scheme: str | None = None, skipped: int = 0,
                 warnings: list[str] | None = None):
        super().__init__(records)
        self.path = path
        self.format = format
        self.encoding = encoding
        self.scheme = scheme
        self.skipped = skipped
        self.warnings = list(warnings or [])

    def __repr__(self) -> str:
        return (f"LabelFile({list.__repr__(self)}, format={self.format!r}, "
                f"encoding={self.encoding!r}, scheme={self.scheme!r}, "
                f"skipped={self.skipped}, warnings={self.warnings!r})")


class ValueProblem(ValueError):
    """A label value does not fit; the message is one line for the user."""


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInputError(
            f"unknown label kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def _json(value: Any) -> str:
    try:
        shown = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        shown = str(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def describe(value: Any) -> str:
    """A value as the user wrote it in JSON: ``null``, ``true``, ``a number 3``,
    ``a string "3"``, ``a list [1, 2]``, ``an object {"a": 1}`` (long ones cut short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = _json(value)
    if isinstance(value, (int, float)):
        return f"a number {shown}"
    if isinstance(value, str):
        return f"a string {shown}"
    if isinstance(value, (list, tuple)):
        return f"a list {shown}" if value else "an empty list []"
    if isinstance(value, dict):
        return f"an object {shown}"
    return shown


def _looks_like_spans(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(v, (dict, list, tuple)) for v in value)


def _class_name(value: Any, within: Any = None) -> str:
    if not isinstance(value, str):
        inside = f" in {_json(within)}" if within is not None else ""
        raise ValueProblem(f"a label must be a string (in double quotes), found "
                           f"{describe(value)}{inside}")
    name = value.strip()
    if not name:
        raise ValueProblem("empty label; give every record a label or remove it")
    return name


def normalize_class(value: Any) -> str:
    """A single-label value: a string, or a list holding exactly one string (doccano)."""
    if _looks_like_spans(value):
        raise ValueProblem("this label looks like NER spans but the task expects one class "
                           "label; import it into an NER task")
    if isinstance(value, list):
        names = sorted({_class_name(v, value) for v in value})
        if not names:
            raise ValueProblem("empty label list; give every record a label or remove it")
        if len(names) > 1:
            raise ValueProblem(f"{len(names)} labels ({', '.join(names)}) but the task is "
                               "single-label; keep one, or use a multi-label task")
        return names[0]
    return _class_name(value)


def normalize_classes(value: Any) -> list[str]:
    """A multi-label value: a list of strings (a single string is a one-label list); an
    empty list is "none of the labels"."""
    if _looks_like_spans(value):
        raise ValueProblem("this label looks like NER spans but the task expects class "
                           "labels; import it into an NER task")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueProblem(f'labels must be a list of strings such as ["a", "b"], found '
                           f"{describe(value)}")
    return sorted({_class_name(v, value) for v in value})


def _int(v: Any, what: str, n: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueProblem(f"span {n}: {what} must be an integer character offset, "
                           f"found {describe(v)}")
    return v


def normalize_spans(value: Any, text: str | None) -> list[dict]:
    """NER spans: accepts ``{start, end, label}`` dicts (extra keys such as Prodigy's
    ``token_start`` are dropped; doccano's ``start_offset``/``end_offset`` are accepted) and
    ``[start, end, label]`` triples (doccano). Checks offsets against ``text`` when given,
    drops exact duplicates, sorts by start and rejects overlaps."""
    if isinstance(value, str):
        raise ValueProblem(f"found the class label {value!r} but the task expects NER spans; "
                           "import it into a classification task")
    if not isinstance(value, list):
        raise ValueProblem("spans must be a list of {start, end, label} objects or "
                           f"[start, end, label] triples, found {describe(value)}")
    out: dict[tuple, dict] = {}
    for n, item in enumerate(value, 1):
        if isinstance(item, dict):
            keys = [next((k for k in names if k in item), None)
                    for names in (("start", "start_offset"), ("end", "end_offset"), ("label",))]
            if None in keys:
                raise ValueProblem(f"span {n} needs 'start', 'end' and 'label' keys, found "
                                   f"{', '.join(map(str, item)) or 'none'}")
            start, end, label = (item[k] for k in keys)
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            start, end, label = item
        else:
            raise ValueProblem(f"span {n} is {describe(item)}; write spans as {{\"start\": 0, "
                               f"\"end\": 5, \"label\": \"ORG\"}} or [0, 5, \"ORG\"]")
        start, end = _int(start, "start", n), _int(end, "end", n)
        if not isinstance(label, str) or not label.strip():
            raise ValueProblem(f"span {n} has no label (found {describe(label)}); give every "
                               "span a label name")
        label = label.strip()
        if not 0 <= start < end:
            raise ValueProblem(f"span {n} [{start}, {end}) is empty or negative; start must be "
                               ">= 0 and less than end")
        if text is not None and end > len(text):
            raise ValueProblem(f"span {n} [{start}, {end}) ends past the end of the text "
                               f"({len(text)} characters); check the offsets")
        out[(start, end, label)] = {"start": start, "end": end, "label": label}
    spans = [out[k] for k in sorted(out)]
    for a, b in zip(spans, spans[1:]):
        if b["start"] < a["end"]:
            raise ValueProblem(
                f"spans overlap: [{a['start']}, {a['end']}) {a['label']} and "
                f"[{b['start']}, {b['end']}) {b['label']}; nested or overlapping entities "
                "are not supported, keep one of them")
    return spans


def normalize_written(value: Any, kind: str, text: str | None = None) -> Any:
    """:func:`normalize_value` for writers: also a single-label prediction's "no answer"
    (``None``)."""
    if value is None and kind == "class":
        return None
    return normalize_value(value, kind, text)


def normalize_value(value: Any, kind: str, text: str | None = None) -> Any:
    if kind == "class":
        return normalize_class(value)
    if kind == "classes":
        return normalize_classes(value)
    return normalize_spans(value, text)
