"""Suggest a keyword rule for a label from labelled examples.

A word is distinctive for a label when it occurs in many of the label's examples and in few
of the others: we rank words (3+ letters, not digits) by ``share_in - share_out`` where each
share is the fraction of examples (with, or without, the label) that contain the word, keep
those found in at least half of the label's examples and in at most a fifth of the others,
and make an ``any`` rule of the best three. Nothing clever — a starting point to edit with
``doctagger keywords set``, shown by ``doctagger keywords suggest``.
"""
from __future__ import annotations

import re
from collections import Counter

from doctagger.tasktypes import Example, Task

from doctagger_keywords.rules import Rule

WORD = re.compile(r"[^\W\d_]{3,}")
STOPWORDS = frozenset("""
the and for are but not you all any can had her was one our out has have him his how its
may new now old see two way who did get let put say she too use that with this from they
will would there their what about which when were been into than then them these those
some such only also more most other very just over after before because while where here
""".split())


def _words(text: str) -> set[str]:
    return {w for w in (m.casefold() for m in WORD.findall(text)) if w not in STOPWORDS}


def _labels(value) -> set[str]:
    if value is None:
        return set()
    return {value} if isinstance(value, str) else set(value)


def suggest_rules(task: Task, examples: list[Example], labels: list[str] | None = None, *,
                  words: int = 3, min_in: float = 0.5, max_out: float = 0.2) -> dict[str, Rule]:
    """``{label: Rule}`` for each of ``labels`` (default: all) that has a distinctive word."""
    bags = [(_words(e.text), _labels(e.value)) for e in examples]
    out: dict[str, Rule] = {}
    for label in labels if labels is not None else task.labels:
        inside = [bag for bag, value in bags if label in value]
        outside = [bag for bag, value in bags if label not in value]
        if not inside:
            continue
        count_in = Counter(w for bag in inside for w in bag)
        count_out = Counter(w for bag in outside for w in bag)
        ranked = []
        for word, n in count_in.items():
            share_in = n / len(inside)
            share_out = count_out[word] / len(outside) if outside else 0.0
            if share_in >= min_in and share_out <= max_out:
                ranked.append((share_in - share_out, n, word))
        ranked.sort(key=lambda r: (-r[0], -r[1], r[2]))
        if ranked:
            out[label] = Rule(match=" ".join(w for _, _, w in ranked[:words]), algorithm="any")
    return out
