"""Label files: reading and writing CSV/TSV, JSONL (Prodigy, doccano) and CoNLL.

Pure functions, no database: the import/export commands match the records to chunks or
documents and write them in one transaction.

``read_labels`` reads the whole file and raises :class:`~doctagger.errors.ImportFormatError`
(with the 1-based line) on the first malformed record, so a caller can import all or
nothing; a file with no record at all (empty, blank lines only, a CSV header only) is an
ImportFormatError too, since an empty label file is most likely a mistake. It returns a :class:`LabelFile`: a plain list of :class:`LabelRecord` that also
carries ``encoding`` (``"cp1252"``/``"latin-1"`` when the file was not valid UTF-8),
``scheme`` (CoNLL tagging scheme detected), ``skipped`` (Prodigy reject/ignore lines) and
``warnings`` (one-line messages to show the user).

Values follow the project conventions; ``kind`` says which the task expects:
``"class"`` -> ``str``; ``"classes"`` (multi-label) -> sorted ``list[str]``;
``"spans"`` (NER) -> sorted non-overlapping ``[{"start", "end", "label"}]``.

Per-format details are in the docstrings of :mod:`.csv_format`, :mod:`.jsonl_format` and
:mod:`.conll_format`. Writing then reading then writing gives byte-identical files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from doctagger.errors import ImportFormatError, InvalidInputError
from doctagger.formats.base import KINDS, LabelFile, LabelRecord, check_kind
from doctagger.formats.conll_format import TAG_RE, is_docstart, read_conll, split_columns, \
    write_conll
from doctagger.formats.csv_format import read_csv, write_csv
from doctagger.formats.encoding import decode_bytes, read_text
from doctagger.formats.jsonl_format import read_jsonl, write_jsonl

__all__ = ["FORMATS", "KINDS", "LabelFile", "LabelRecord", "detect_format", "read_labels",
           "write_labels"]

FORMATS = ("csv", "jsonl", "conll")

_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
             ".ndjson": "jsonl", ".conll": "conll", ".conllu": "conll", ".bio": "conll",
             ".iob": "conll"}
_ALIASES = {"tsv": "csv", "json": "jsonl", "ndjson": "jsonl"}
_EMPTY = {  # a file with no record at all: most likely a mistake, so an error
    "csv": "the file is empty: a header row and no labels below it; add one row per label",
    "jsonl": 'the file is empty; write one JSON object a line, e.g. {"text": "...", '
             '"label": "..."}',
    "conll": "the file is empty; write one token and its tag a line, a blank line between "
             "sentences",
}


def _looks_like_conll(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    try:
        text = decode_bytes(head).text
    except InvalidInputError:
        return False
    lines = [ln for ln in text.split("\n")[:-1] or text.split("\n")
             if ln.strip() and not is_docstart(ln)][:50]
    return bool(lines) and all(
        len(cols) >= 2 and TAG_RE.match(cols[-1])
        for cols in (split_columns(ln.rstrip("\r")) for ln in lines))


def detect_format(path) -> str:
    """The format of a label file from its suffix: ``.csv``/``.tsv`` -> ``"csv"``;
    ``.jsonl``/``.json``/``.ndjson`` -> ``"jsonl"``; ``.conll``/``.conllu``/``.bio``/``.iob``
    -> ``"conll"``; ``.txt`` (or no suffix) whose first lines are token/tag lines ->
    ``"conll"``. InvalidInputError otherwise, telling the user to pass ``--format``."""
    p = Path(path)
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt:
        return fmt
    if p.suffix.lower() in (".txt", "") and p.is_file() and _looks_like_conll(p):
        return "conll"
    raise InvalidInputError(f"cannot tell the format of {p.name} from its name; pass "
                            f"--format {', '.join(FORMATS)}")


def _check_format(fmt: str) -> tuple[str, str | None]:
    """(format, delimiter forced by the name, if any)."""
    f = (fmt or "").lower()
    if f == "tsv":
        return "csv", "\t"
    f = _ALIASES.get(f, f)
    if f not in FORMATS:
        raise InvalidInputError(f"unknown label file format {fmt!r}; use one of "
                                f"{', '.join(FORMATS)}")
    return f, None


def _check_separator(sep: str) -> str:
    if not isinstance(sep, str) or not sep or sep.isspace() or sep in ",\t\"\n\r":
        raise InvalidInputError(f"bad multi-label separator {sep!r}; use a character such "
                                "as | or ; that no label contains")
    return sep


def read_labels(path, fmt: str = "auto", *, kind: str,
                multi_label_separator: str = "|") -> LabelFile:
    """Read a whole label file; see the module docstring.

    ``fmt``: ``"auto"`` (by :func:`detect_format`), ``"csv"``, ``"tsv"``, ``"jsonl"`` or
    ``"conll"``. ``kind``: ``"class"``, ``"classes"`` or ``"spans"``. Raises
    ImportFormatError for a malformed line, NotFoundError for a missing file,
    InvalidInputError for a bad argument or a format that cannot hold ``kind``.
    A file with no record is an ImportFormatError ("the file is empty"); one whose records
    are all Prodigy reject/ignore answers reads as an empty LabelFile with a warning.
    """
    check_kind(kind)
    delimiter = None
    if fmt == "auto":
        fmt = detect_format(path)
    else:
        fmt, delimiter = _check_format(fmt)
    if fmt == "conll" and kind != "spans":
        raise InvalidInputError("CoNLL files hold NER tags; import them into an NER task "
                                "(for classification labels use csv or jsonl)")
    decoded = read_text(path)
    name = str(path)
    if fmt == "csv":
        result = read_csv(decoded.text, name, kind=kind, delimiter=delimiter,
                          separator=_check_separator(multi_label_separator))
    elif fmt == "jsonl":
        result = read_jsonl(decoded.text, name, kind=kind)
    else:
        result = read_conll(decoded.text, name)
    if not result and not result.skipped:
        raise ImportFormatError(name, None, _EMPTY[fmt])
    result.path = name
    result.encoding = decoded.encoding
    result.warnings[:0] = decoded.warnings
    if not result:
        result.warnings.append(f"{name}: no labelled records found")
    return result


def write_labels(records: Iterable[LabelRecord], fh, fmt: str, *, kind: str,
                 multi_label_separator: str = "|", delimiter: str | None = None) -> int:
    """Write ``records`` to the text file object ``fh`` (open it with ``newline=""`` and
    ``encoding="utf-8"``); returns the number written.

    ``fmt``: ``"csv"`` (``delimiter`` ``","`` unless given), ``"tsv"``, ``"jsonl"`` or
    ``"conll"`` (NER only). Values are checked against ``kind`` (InvalidLabelError);
    records that the format cannot hold raise InvalidInputError.
    """
    check_kind(kind)
    fmt, forced = _check_format(fmt)
    if fmt == "csv":
        return write_csv(records, fh, kind=kind, delimiter=delimiter or forced or ",",
                         separator=_check_separator(multi_label_separator))
    if fmt == "jsonl":
        return write_jsonl(records, fh, kind=kind)
    if kind != "spans":
        raise InvalidInputError("CoNLL holds NER tags only; export classification labels "
                                "as csv or jsonl")
    return write_conll(records, fh)
