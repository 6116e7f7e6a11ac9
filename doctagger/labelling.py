"""The labelling session behind ``doctagger label``: saving every answer at once, undo,
the classification keys and the NER edit language.

Everything here is plain functions and a :class:`Session` object, testable without a
terminal; :mod:`doctagger.cli.label` is the terminal around it, and
:mod:`doctagger.selection` decides which item comes next (the strategies).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from doctagger.errors import InvalidInputError, InvalidLabelError
from doctagger.selection import DEFAULT_POOL, Item
from doctagger.tasktypes import Prediction, Task

if TYPE_CHECKING:  # the index module pulls in sqlite-utils: keep `--help` fast
    from doctagger.index import Index

STRATEGIES = ("sequential", "random", "uncertain")


# -- the session --------------------------------------------------------------------------
@dataclass
class _Answer:
    item: Item
    saved: bool
    label_id: int | None = None
    previous: dict | None = None  # the label the item had before (value, source)
    accepted: bool = False  # saved as the model's answer (model-accepted)


@dataclass
class Session:
    """A labelling session over an item queue: ``next()``, then ``save`` or ``skip``;
    ``undo`` takes the last answer back and shows that item again."""

    index: Index
    task: Task
    task_type: Any
    items: Iterator[Item]
    limit: int | None = None
    model: dict | None = None
    predictor_factory: Callable[[], Any] | None = None
    notes: list[str] = field(default_factory=list)  # one-line notes said at the start
    premark: bool = True  # NER: pre-mark the model's spans (False: it learned nothing)
    saved: int = 0
    skipped: int = 0
    accepted: int = 0
    history: list[_Answer] = field(default_factory=list)
    pending: list[Item] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.saved + self.skipped

    def next(self) -> Item | None:
        if self.limit is not None and self.answered >= self.limit:
            return None
        if self.pending:
            return self.pending.pop()
        return next(self.items, None)

    def suggestion(self, item: Item) -> Prediction | None:
        """The model's guess for an item (spans to pre-mark for NER), when there is a model
        and it is worth showing (None when the model is flagged as having learned nothing)."""
        if not self.premark:
            return None
        if item.prediction is not None or self.predictor_factory is None:
            return item.prediction
        from doctagger.tagging import predict

        item.prediction = predict(self.predictor_factory(), [item.text])[0]
        return item.prediction

    def save(self, item: Item, value: Any, *, source: str = "human") -> int:
        """Validate and save the answer at once (its own transaction)."""
        from doctagger.labels import save_label

        previous = self._current_label(item)
        label_id = save_label(self.index, self.task, value, source=source, **item.target)
        accepted = source == "model-accepted"
        self.history.append(_Answer(item, True, label_id, previous, accepted))
        self.saved += 1
        self.accepted += accepted
        return label_id

    def skip(self, item: Item) -> None:
        self.history.append(_Answer(item, False))
        self.skipped += 1

    def undo(self, current: Item | None) -> Item | None:
        """Take back the last answer; returns its item (to show again), or None."""
        if not self.history:
            return None
        from doctagger.labels import delete_label, save_label

        answer = self.history.pop()
        if answer.saved:
            if answer.previous is None:
                delete_label(self.index, answer.label_id)
            else:
                save_label(self.index, self.task, answer.previous["value"], validated=True,
                           source=answer.previous["source"], **answer.item.target)
            self.saved -= 1
            self.accepted -= answer.accepted
        else:
            self.skipped -= 1
        if current is not None:
            self.pending.append(current)
        return answer.item

    def _current_label(self, item: Item) -> dict | None:
        if item.kind == "document":
            row = self.index.one("select value, source from labels where task_id = ? and "
                                 "target = 'document' and document_id = ?",
                                 [self.task.id, item.document_id])
        else:
            row = self.index.one("select value, source from labels where task_id = ? and "
                                 "target = 'chunk' and chunk_id = ?", [self.task.id, item.chunk_id])
        return row and {"value": json.loads(row["value"]), "source": row["source"]}


def start_session(index: Index, task_name: str, *, strategy: str = "sequential",
                  review_mode: bool = False, limit: int | None = None,
                  pool: int = DEFAULT_POOL, seed: int | None = None,
                  version: int | str | None = None) -> Session:
    """A Session for ``doctagger label``: the task, its type, the model when one is needed
    or available, and the item queue of the strategy."""
    from doctagger.plugins import get_task_type
    from doctagger.selection import random_order, review, sequential, uncertain
    from doctagger.tagging import load_predictor, require_model, resolve_model

    if strategy not in STRATEGIES:
        raise InvalidInputError(f"unknown strategy '{strategy}'; use one of "
                                f"{', '.join(STRATEGIES)}")
    task = index.task(task_name)
    task_type = get_task_type(task.type)
    spans = getattr(task_type, "value_kind", "class") == "spans"
    if spans and task.level == "document":
        raise InvalidLabelError(f"task '{task.name}' marks spans in chunk text: it is labelled "
                                "chunk by chunk; create it with --level chunk")
    if review_mode:
        model = require_model(index, task, task_type, version)
    else:
        model = resolve_model(index, task, task_type, version)
    cache: dict = {}

    def predictor_factory():
        if "p" not in cache:
            cache["p"] = load_predictor(index, task, task_type, model)
        return cache["p"]

    factory = predictor_factory if model is not None else None
    notes, premark = [], True
    if spans and model is not None and (model.get("info") or {}).get("learned_nothing"):
        premark = False  # its spans are noise that a plain Enter would save as labels
        which = "active model" if version is None else "model"
        notes.append(f"the {which} (v{model['version']}) learned nothing: "
                     "no spans are pre-marked")
    if review_mode:
        items = review(index, task, task_type, model)
    elif strategy == "uncertain" and model is not None:
        items = uncertain(index, task, task_type, model, predictor_factory, pool=pool, seed=seed)
    elif strategy == "uncertain":
        notes.append(f"task '{task.name}' has no trained model yet, so items come at random; "
                     f"train one with 'doctagger train {task.name}' to ask the uncertain ones "
                     "first")
        items = random_order(index, task, seed)
    elif strategy == "random":
        items = random_order(index, task, seed)
    else:
        items = sequential(index, task)
    return Session(index, task, task_type, items, limit=limit, model=model,
                   predictor_factory=factory if (spans or review_mode) else None, notes=notes,
                   premark=premark)


# -- classification keys -----------------------------------------------------------------
RESERVED_KEYS = set("asuq?0")
LABEL_KEYS = "123456789bcdefghijklmnoprtvwxyz"


def label_keys(labels: list[str]) -> dict[str, str]:
    """key -> label: 1-9, then letters that are not commands."""
    return {k: label for k, label in zip(LABEL_KEYS, labels)}


def label_candidates(name: str, labels: list[str]) -> list[str]:
    """The labels ``name`` may mean: its exact name, else the one equal in any case, else
    those it is a prefix of (any case). One candidate: resolved; several: ambiguous."""
    name = name.strip()
    if not name:
        return []
    if name in labels:
        return [name]
    folded = [lab for lab in labels if lab.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded
    return [lab for lab in labels if lab.casefold().startswith(name.casefold())]


def resolve_label(name: str, labels: list[str]) -> str | None:
    """A label by its exact name, then case-insensitively, then by a unique prefix."""
    found = label_candidates(name, labels)
    return found[0] if len(found) == 1 else None


def label_problem(name: str, labels: list[str]) -> str:
    """Why ``name`` names no label: an ambiguous prefix, or no label at all."""
    found = label_candidates(name, labels)
    if len(found) > 1:
        return (f"'{name.strip()}' could be {', '.join(found[:-1])} or {found[-1]}: "
                "type more of it")
    return f"unknown label '{name.strip()}' (labels: {', '.join(labels)})"


def parse_selection(line: str, keys: dict[str, str],
                    labels: list[str]) -> tuple[list[str] | None, str]:
    """A multi-label answer given as one line, ``neuro,other`` or ``1,3`` (label names or
    keys, comma-separated): ``(sorted labels, "")``, or ``(None, why not)``."""
    parts = [part.strip() for part in line.split(",")]
    parts = [part for part in parts if part]
    if not parts:
        return None, "name the labels, comma-separated: 'neuro,other' (0 saves none of them)"
    chosen = set()
    for part in parts:
        label = keys.get(part) or resolve_label(part, labels)
        if label is None:
            return None, label_problem(part, labels) + "; nothing saved"
        chosen.add(label)
    return sorted(chosen), ""


# -- the NER edit language ---------------------------------------------------------------
NER_HELP = """\
NER commands (one per line):
  a  or Enter        accept the spans as shown and save
  + TEXT = LABEL     mark the first unmarked occurrence of TEXT as LABEL, as a
                     whole word ('age' is never marked inside 'damage'); repeat
                     to mark the next one; LABEL may be a unique prefix
  - N [N ...]        drop span N (numbers as listed); '- *' drops them all
  N = LABEL          change the label of span N
  s  skip   u  undo the last answer   q  quit   ?  this help"""


@dataclass
class NerResult:
    action: str  # accept | skip | undo | quit | help | edit | error
    spans: list[dict]
    message: str = ""


PREMARK_MIN_SCORE = 0.5


def premarked_spans(value: Any, min_score: float = PREMARK_MIN_SCORE
                    ) -> tuple[list[dict], list[dict]]:
    """A model's predicted spans split into those to pre-mark and those scored under
    ``min_score`` (left unmarked: a plain Enter must not save a guess the model itself
    doubts). A span without a "score" is pre-marked."""
    keep, low = [], []
    for span in value if isinstance(value, list) else []:
        if not isinstance(span, dict):
            continue
        score = span.get("score")
        (low if isinstance(score, (int, float)) and score < min_score else keep).append(span)
    return plain_spans(keep), low


def _is_word_char(ch: str) -> bool:
    """A letter, a combining mark (a vowel sign, a decomposed accent: part of its word,
    though regex \\w misses them), a digit or '_'."""
    import unicodedata

    return ch == "_" or unicodedata.category(ch)[0] in "LMN"


def _whole_word(text: str, needle: str, start: int, end: int) -> bool:
    """Whether text[start:end] (== needle) is not part of a longer word: the character
    before and after it are not word characters, on each side where the needle itself
    begins or ends with one (a needle like '(b)' needs no boundary at its brackets)."""
    if _is_word_char(needle[0]) and start > 0 and _is_word_char(text[start - 1]):
        return False
    if _is_word_char(needle[-1]) and end < len(text) and _is_word_char(text[end]):
        return False
    return True


def _occurrences(needle: str, text: str, flags: int) -> Iterator[tuple[int, int]]:
    """Every occurrence, overlapping ones too (so a part-word match cannot hide a whole
    word that overlaps it)."""
    for match in re.finditer(f"(?=({re.escape(needle)}))", text, flags):
        yield match.span(1)


def _sorted(spans: list[dict]) -> list[dict]:
    return sorted(({"start": int(s["start"]), "end": int(s["end"]), "label": s["label"]}
                   for s in spans), key=lambda s: (s["start"], s["end"]))


def _overlaps(a: dict, start: int, end: int) -> bool:
    return a["start"] < end and start < a["end"]


def apply_ner_command(line: str, text: str, spans: list[dict], labels: list[str]) -> NerResult:
    """Apply one line of the NER edit language to ``spans`` (never modified in place)."""
    spans = _sorted(spans)
    command = line.strip()
    simple = {"": "accept", "a": "accept", "s": "skip", "u": "undo", "q": "quit", "?": "help"}
    if command in simple:
        return NerResult(simple[command], spans, NER_HELP if command == "?" else "")
    if command.startswith("+"):
        body = command[1:]
        if "=" not in body:
            return NerResult("error", spans, "add a span with '+ TEXT = LABEL'")
        needle, name = (part.strip() for part in body.rsplit("=", 1))
        if len(needle) >= 2 and needle[0] == needle[-1] and needle[0] in "\"'":
            needle = needle[1:-1]
        label = resolve_label(name, labels)
        if label is None:
            return NerResult("error", spans, label_problem(name, labels))
        if not needle:
            return NerResult("error", spans, "give the text to mark: '+ TEXT = LABEL'")
        part_word = found = False
        for flags in (0, re.IGNORECASE):  # exact case first, then any case
            for start, end in _occurrences(needle, text, flags):
                if not _whole_word(text, needle, start, end):
                    part_word = True
                    continue
                found = True
                hit = next((n for n, s in enumerate(spans, 1) if _overlaps(s, start, end)), None)
                if hit is None:
                    new = _sorted(spans + [{"start": start, "end": end, "label": label}])
                    return NerResult("edit", new, f"marked {text[start:end]!r} as {label}")
                s = spans[hit - 1]
                if text[s["start"]:s["end"]].lower() == needle.lower():
                    continue  # this very text is marked (here, or overlapping this hit)
                # never skip past a clash silently
                return NerResult("error", spans, f"{needle!r} overlaps span {hit} "
                                 f"({text[s['start']:s['end']]!r}={s['label']}); "
                                 f"drop it first with '- {hit}'")
        if found:
            return NerResult("error", spans, f"every {needle!r} in the text is marked already")
        if part_word:
            return NerResult("error", spans, f"no whole-word {needle!r} in the text (only "
                             "inside longer words, which are never marked)")
        return NerResult("error", spans, f"no {needle!r} in the text")
    if command.startswith("-"):
        body = command[1:].strip()
        if body in ("*", "all"):
            return NerResult("edit", [], "dropped every span")
        numbers = body.replace(",", " ").split()
        if not numbers or not all(n.isdigit() for n in numbers):
            return NerResult("error", spans, "drop spans by number: '- 2' or '- 1 3'")
        wanted = {int(n) for n in numbers}
        bad = sorted(n for n in wanted if not 1 <= n <= len(spans))
        if bad:
            return NerResult("error", spans, f"no span {bad[0]} (there are {len(spans)})")
        kept = [s for n, s in enumerate(spans, 1) if n not in wanted]
        return NerResult("edit", kept, f"dropped {len(wanted)} span(s)")
    match = re.fullmatch(r"(\d+)\s*=\s*(.+)", command)
    if match:
        number, name = int(match.group(1)), match.group(2)
        if not 1 <= number <= len(spans):
            return NerResult("error", spans, f"no span {number} (there are {len(spans)})")
        label = resolve_label(name, labels)
        if label is None:
            return NerResult("error", spans, label_problem(name, labels))
        new = [dict(s) for s in spans]
        new[number - 1]["label"] = label
        return NerResult("edit", new, f"span {number} is now {label}")
    return NerResult("error", spans, f"did not understand {command!r}; type ? for help")


def render_spans(text: str, spans: list[dict],
                 mark: Callable[[str, int, str], str] | None = None) -> str:
    """The text with each span marked ``[surface|N:LABEL]``, numbered in order."""
    mark = mark or (lambda surface, n, label: f"[{surface}|{n}:{label}]")
    out, pos = [], 0
    for n, s in enumerate(_sorted(spans), 1):
        if s["start"] < pos:
            continue
        out.append(text[pos:s["start"]])
        out.append(mark(text[s["start"]:s["end"]], n, s["label"]))
        pos = s["end"]
    out.append(text[pos:])
    return "".join(out)


def plain_spans(value: Any) -> list[dict]:
    """Spans reduced to start/end/label (a model's spans may carry scores)."""
    if not isinstance(value, list):
        return []
    return _sorted([s for s in value if isinstance(s, dict)])


__all__ = ["Item", "Session", "start_session", "STRATEGIES", "apply_ner_command",
           "render_spans", "label_keys", "resolve_label", "label_candidates", "label_problem",
           "parse_selection", "plain_spans", "premarked_spans", "PREMARK_MIN_SCORE",
           "NER_HELP"]
