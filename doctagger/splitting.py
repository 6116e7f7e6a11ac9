"""The held-out split: stratified by label, and never dividing a document.

Chunks of one document share words, names and layout; with some in training and some in
evaluation the held-out score measures memory, not generalisation. So examples are split
as groups: two examples are in one group when they have the same ``group`` (document) or
the same text (a duplicate in another document would leak just the same). Groups are then
assigned to the eval side, in an order fixed by the seed, whenever that brings every
label's eval count closer to ``eval_fraction`` of its examples without taking a label's
last training example. With tiny data every label gets at least one eval example when its
groups allow it; when nothing can be held out, the eval side is empty and the caller trains
without held-out evaluation (never evaluating on training data).
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Callable, Hashable, Sequence

from doctagger.index import text_hash
from doctagger.tasktypes import Example, value_labels


def rarest_label_key(examples: Sequence[Example]) -> Callable[[Example], Hashable]:
    """The default stratification key: an example's rarest label (over all examples), ""
    for an example with no label (an NER text without entities)."""
    counts = Counter(label for ex in examples for label in value_labels(ex.value))

    def key(example: Example) -> Hashable:
        labels = value_labels(example.value)
        if not labels:
            return ""
        return min(labels, key=lambda label: (counts[label], label))

    return key


def _groups(examples: Sequence[Example]) -> list[list[int]]:
    """Indices of examples joined by same group or same (normalised) text."""
    parent = list(range(len(examples)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}
    for i, ex in enumerate(examples):
        keys = [("text", text_hash(ex.text or ""))]
        if ex.group is not None:
            keys.append(("group", ex.group))
        for key in keys:
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    members: dict[int, list[int]] = {}
    for i in range(len(examples)):
        members.setdefault(find(i), []).append(i)
    return list(members.values())


def split_examples(examples: Sequence[Example], eval_fraction: float = 0.2, seed: int = 42,
                   stratify_key: Callable[[Example], Hashable] | None = None
                   ) -> tuple[list[Example], list[Example]]:
    """``(train, evaluation)``: about ``eval_fraction`` of the examples of each stratum
    (``stratify_key(example)``, default: the example's rarest label) held out, whole
    groups at a time (see the module docstring). Deterministic for a seed; both lists keep
    the input order. ``eval_fraction`` 0, or data too small to hold anything out without
    emptying a label's training side, gives an empty evaluation list."""
    examples = list(examples)
    if not examples or eval_fraction <= 0:
        return examples, []
    if eval_fraction >= 1:
        raise ValueError("eval_fraction must be below 1")
    key = stratify_key or rarest_label_key(examples)
    keys = [key(ex) for ex in examples]
    total = Counter(keys)
    target = {k: max(1 if n >= 2 else 0, round(n * eval_fraction)) for k, n in total.items()}
    groups = _groups(examples)
    random.Random(seed).shuffle(groups)
    # big groups first, so that many small groups can fine-tune the counts afterwards
    groups.sort(key=len, reverse=True)
    held: Counter = Counter()
    chosen: set[int] = set()
    # every label's examples (not only the stratum's): a multi-label example may carry a
    # label that is never its rarest, and no label may lose its last training example
    labels_of = [set(value_labels(ex.value)) for ex in examples]
    label_total = Counter(lbl for found in labels_of for lbl in found)
    label_held: Counter = Counter()
    n_eval_target = max(1, round(len(examples) * eval_fraction))

    def cost(counts: Counter) -> float:
        return sum(abs(target[k] - counts[k]) / max(target[k], 1) for k in total)

    for members in groups:
        add = Counter(keys[i] for i in members)
        after = held + add
        if any(after[k] >= total[k] for k in add):  # would leave a label with no training
            continue
        add_labels = Counter(lbl for i in members for lbl in labels_of[i])
        if any(label_held[lbl] + n >= label_total[lbl] for lbl, n in add_labels.items()):
            continue
        if sum(after.values()) > max(n_eval_target * 1.5, n_eval_target + 1):
            continue
        if cost(after) < cost(held):
            held = after
            label_held += add_labels
            chosen.update(members)
    train = [ex for i, ex in enumerate(examples) if i not in chosen]
    evaluation = [ex for i, ex in enumerate(examples) if i in chosen]
    return train, evaluation


def split_summary(train: Sequence[Example], evaluation: Sequence[Example]) -> dict:
    """Counts per side and per label (for doctagger.json and the user)."""
    def counts(items):
        return dict(sorted(Counter(lbl for ex in items for lbl in value_labels(ex.value)).items()))

    return {"train": len(train), "eval": len(evaluation),
            "train_label_counts": counts(train), "eval_label_counts": counts(evaluation),
            "train_documents": len({ex.group for ex in train if ex.group is not None}),
            "eval_documents": len({ex.group for ex in evaluation if ex.group is not None})}
