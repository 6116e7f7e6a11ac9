"""CoNLL token-per-line NER files.

Reading: one token a line, sentences separated by blank lines; columns separated by tabs
(when the line has a tab) or runs of spaces; the token is the FIRST column and the tag the
LAST, so ``token<TAB>tag`` (WNUT-17) and ``token POS chunk NER`` (CoNLL-2003, SEC filings)
both work. ``-DOCSTART-`` lines are skipped. Tags: ``O``, ``B-X``, ``I-X``, ``E-X``, ``S-X``.

The text of a sentence is its tokens joined by one space; spans are character offsets into
that text. The tagging scheme is detected over the whole file (``LabelFile.scheme``):

- ``BIOES``: some ``E-``/``S-`` tag;
- ``IO``: no ``B-`` at all: adjacent tokens of one type form one entity, a new entity starts
  wherever the type changes;
- ``IOB1``: every ``B-X`` directly follows an ``I-X``/``B-X`` (``B-`` only separates two
  adjacent entities of one type), so entities begin with ``I-``;
- ``BIO`` (IOB2) otherwise.

All four decode with one lenient rule (as seqeval does): ``B-``/``S-`` always begin an
entity; ``I-``/``E-`` continue the open entity of the same type, else begin one; ``E-``/``S-``
close it. In a BIO/BIOES file an entity that begins with ``I-`` is a repair, counted in a
warning.

Writing: BIO tags, ``token<TAB>tag`` lines and a blank line after each sentence; tokens are
the text split on white space and also at every span start and end inside a word, so every
span can be written: ``United States.`` with ``United States`` a LOC gives ``United``,
``States``, ``.`` (read back, that sentence's text is ``United States .``). A span of white
space only has no token and is left out, as import drops it. A text holding a word that
starts with ``-DOCSTART-``, or an entity label with white space, cannot be written
(InvalidInputError: export as jsonl); messages name the record by ``LabelRecord.origin``
(the document, page and chunk) when it is set. ``path`` and ``meta`` are not written.

Reading keeps the line of each entity's first token in ``LabelRecord.span_lines``, so an
entity type the task does not know is reported on the line where it is tagged
(:func:`doctagger.formats.base.problem_line`).
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from typing import Iterable

from doctagger.errors import ImportFormatError, InvalidInputError, InvalidLabelError
from doctagger.formats.base import LabelFile, LabelRecord, ValueProblem, normalize_spans
from doctagger.formats.encoding import split_lines

TAG_RE = re.compile(r"^(?:O|([BIES])-(\S+))$")
_TOKEN = re.compile(r"\S+")


def split_columns(line: str) -> list[str]:
    if "\t" in line:
        return [c.strip() for c in line.split("\t")]
    return line.split()


def is_docstart(line: str) -> bool:
    return line.lstrip().startswith("-DOCSTART-")


def read_conll(text: str, name: str) -> LabelFile:
    # a sentence: (its tokens' lines, tokens, tags)
    sentences: list[tuple[list[int], list[str], list[tuple[str | None, str | None]]]] = []
    lines: list[int] = []
    tokens: list[str] = []
    tags: list[tuple[str | None, str | None]] = []
    for n, line in enumerate(split_lines(text), 1):
        if not line.strip() or is_docstart(line):
            if tokens:
                sentences.append((lines, tokens, tags))
            lines, tokens, tags = [], [], []
            continue
        cols = split_columns(line)
        if len(cols) < 2:
            raise ImportFormatError(name, n, f"expected a token and a tag separated by a tab "
                                    f"or spaces, found one column {line.strip()!r}; put the "
                                    "tag last on each token line")
        token, tag = cols[0], cols[-1]
        if not token:
            raise ImportFormatError(name, n, "empty token before the tab; every token line "
                                    "starts with the token")
        m = TAG_RE.match(tag)
        if not m:
            raise ImportFormatError(name, n, f"unknown tag {tag!r}; tags are O, B-TYPE, "
                                    "I-TYPE (or E-TYPE, S-TYPE) in the last column")
        lines.append(n)
        tokens.append(token)
        tags.append((m.group(1), m.group(2)))
    if tokens:
        sentences.append((lines, tokens, tags))

    scheme = detect_scheme([t for _, _, t in sentences])
    records, repaired = [], 0
    for lines, toks, tgs in sentences:
        spans, fixes = tags_to_spans(toks, tgs)
        repaired += fixes
        text = " ".join(toks)
        token_at, pos = {}, 0
        for i, tok in enumerate(toks):
            token_at[pos] = i
            pos += len(tok) + 1
        records.append(LabelRecord(line=lines[0], value=spans, text=text,
                                   span_lines=[lines[token_at[s["start"]]] for s in spans]))
    warnings = []
    if repaired and scheme in ("BIO", "BIOES"):
        warnings.append(f"{name}: {repaired} entities start with an I- (or E-) tag with no B- "
                        "before them; read them as beginnings")
    return LabelFile(records, format="conll", scheme=scheme, warnings=warnings)


def detect_scheme(sentences: Iterable[list[tuple[str | None, str | None]]]) -> str:
    """``"BIOES"``, ``"IO"``, ``"IOB1"`` or ``"BIO"`` (see the module docstring)."""
    has_b = has_i = has_es = False
    b_only_between = True
    for tags in sentences:
        prev: tuple[str | None, str | None] = (None, None)
        for prefix, typ in tags:
            if prefix in ("E", "S"):
                has_es = True
            elif prefix == "B":
                has_b = True
                if not (prev[0] in ("B", "I") and prev[1] == typ):
                    b_only_between = False
            elif prefix == "I":
                has_i = True
            prev = (prefix, typ)
    if has_es:
        return "BIOES"
    if not has_b:
        return "IO" if has_i else "BIO"
    return "IOB1" if b_only_between else "BIO"


def tags_to_spans(tokens: list[str], tags: list[tuple[str | None, str | None]]):
    """Spans (char offsets into ``" ".join(tokens)``) and how many entities began with I-/E-."""
    spans: list[dict] = []
    starts, pos = [], 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok) + 1
    cur: list | None = None  # [first token, last token, type]
    fixes = 0

    def close():
        nonlocal cur
        if cur is not None:
            a, b, typ = cur
            spans.append({"start": starts[a], "end": starts[b] + len(tokens[b]), "label": typ})
            cur = None

    for i, (prefix, typ) in enumerate(tags):
        if prefix is None:
            close()
            continue
        if prefix in ("I", "E") and cur is not None and cur[2] == typ:
            cur[1] = i
        else:
            close()
            if prefix in ("I", "E"):
                fixes += 1
            cur = [i, i, typ]
        if prefix in ("E", "S"):
            close()
    close()
    return spans, fixes


def tokens_for(text: str, spans: list[dict]) -> list[tuple[int, int]]:
    """``(start, end)`` of the tokens CoNLL writes for ``text``: the text split on white
    space, and also at every span start and end inside a word, so that every span covers
    whole tokens (``"States."`` with a span on ``States`` gives ``States`` and ``.``)."""
    cuts = sorted({sp["start"] for sp in spans} | {sp["end"] for sp in spans})
    out = []
    for m in _TOKEN.finditer(text):
        start, end = m.span()
        for cut in cuts[bisect_right(cuts, start):bisect_left(cuts, end)]:
            out.append((start, cut))
            start = cut
        out.append((start, end))
    return out


def write_conll(records: Iterable[LabelRecord], fh) -> int:
    count = 0
    for n, r in enumerate(records, 1):
        where = r.where(n)
        if r.text is None or not r.text.strip():
            raise InvalidInputError(f"{where}: no text; CoNLL holds token-level NER "
                                    "labels of texts, export documents as jsonl or csv")
        try:
            spans = normalize_spans(r.value, r.text)
        except ValueProblem as e:
            raise InvalidLabelError(f"{where}: {e}") from None
        toks = tokens_for(r.text, spans)
        for s, e in toks:
            if is_docstart(r.text[s:e]):
                raise InvalidInputError(f"{where}: the text holds the word -DOCSTART-, which "
                                        "CoNLL reads as a document break; export as jsonl "
                                        "instead")
        starts = [s for s, _ in toks]
        tags = ["O"] * len(toks)
        for sp in spans:
            s, e, label = sp["start"], sp["end"], sp["label"]
            if _TOKEN.fullmatch(label) is None:
                raise InvalidInputError(f"{where}: the entity label {label!r} contains spaces, "
                                        "which CoNLL cannot hold; export as jsonl instead")
            inside = range(bisect_left(starts, s), bisect_left(starts, e))
            for k in inside:  # tokens never cross s or e; a span of white space has none
                tags[k] = f"I-{label}" if k != inside.start else f"B-{label}"
        fh.write("".join(f"{r.text[s:e]}\t{tag}\n" for (s, e), tag in zip(toks, tags)) + "\n")
        count += 1
    return count
