"""Character spans <-> token labels, and strided windows over long texts.

Pure functions over what a fast tokenizer returns (``offset_mapping`` and ``word_ids``), so
they can be tested with hand-made offsets.

Words are the tokenizer's pre-tokenizer words (its ``word_ids``): for BERT-style tokenizers
a run of letters or digits, or one punctuation mark. The model learns one BIO tag per word,
on the word's FIRST sub-token; every other sub-token, and the special tokens, get -100 (the
loss ignores them). A word that overlaps an entity span is tagged with the entity, so a span
that starts or ends inside a word grows to the whole word (``word_tags`` counts those).

Long texts are cut by the tokenizer itself (``return_overflowing_tokens`` with a ``stride``
of overlapping tokens). A window may then begin in the middle of a word: a token is a first
sub-token only when its start is the start of its word over the whole text, so a
continuation piece at the top of a window is never mistaken for a word start. When windows
overlap, each word is read from the window where it has the most context on both sides.

Decoding reads the BIO tags back, the way ``transformers.pipeline("token-classification",
aggregation_strategy="first")`` does: ``B-X`` begins an entity, ``I-X`` continues an open
``X`` entity and otherwise begins one (an ``I-`` after ``O`` starts an entity), ``O`` closes.
An entity's span runs from its first word's start to its last word's end; its score is the
mean confidence of its words.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

IGNORE = -100


def bio_labels(types: Sequence[str]) -> list[str]:
    """The model's label list: ``O`` then ``B-X``, ``I-X`` for each entity type."""
    out = ["O"]
    for t in types:
        out += [f"B-{t}", f"I-{t}"]
    return out


@dataclass
class Window:
    """One model input: a text, or a strided piece of a long one."""

    text_index: int
    input_ids: list[int]
    attention_mask: list[int]
    #: (position in the window, word index) of every word whose first sub-token is here
    firsts: list[tuple[int, int]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # token_type_ids when the tokenizer has them

    def context(self, position: int) -> int:
        """How many tokens this window holds on the thinner side of ``position``."""
        return min(position, len(self.input_ids) - 1 - position)


def word_char_spans(offsets_per_window: Sequence[Sequence[tuple[int, int]]],
                    word_ids_per_window: Sequence[Sequence[int | None]]) -> list[tuple[int, int]]:
    """Character span of every word of ONE text, from all its windows: ``[start, end)``
    from the word's first sub-token start to its last sub-token end (index = word id)."""
    spans: dict[int, list[int]] = {}
    for offsets, word_ids in zip(offsets_per_window, word_ids_per_window):
        for (start, end), word in zip(offsets, word_ids):
            if word is None:
                continue
            if word in spans:
                spans[word][0] = min(spans[word][0], start)
                spans[word][1] = max(spans[word][1], end)
            else:
                spans[word] = [start, end]
    if not spans:
        return []
    n = max(spans) + 1
    # a word id with no token cannot happen with a real tokenizer; keep indices aligned
    return [tuple(spans[w]) if w in spans else (0, 0) for w in range(n)]


def first_subtokens(offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None],
                    words: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(position, word) of each token in one window that begins its word in the text."""
    out, seen = [], set()
    for pos, ((start, _end), word) in enumerate(zip(offsets, word_ids)):
        if word is None or word in seen:
            continue
        if start == words[word][0]:
            out.append((pos, word))
            seen.add(word)
    return out


def word_tags(words: Sequence[tuple[int, int]], spans: Sequence[dict]) -> tuple[list[str], int]:
    """BIO tag of each word from character spans, and how many spans did not fall exactly on
    word boundaries (they grow to whole words, or are lost when they cover no word)."""
    tags = ["O"] * len(words)
    inexact = 0
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        s, e, label = span["start"], span["end"], span["label"]
        hit = [w for w, (ws, we) in enumerate(words) if ws < e and we > s and we > ws]
        if not hit:
            inexact += 1
            continue
        if words[hit[0]][0] != s or words[hit[-1]][1] != e:
            inexact += 1
        first = True
        for w in hit:
            if tags[w] != "O":  # a word shared by two spans keeps the first
                first = False
                continue
            tags[w] = ("B-" if first else "I-") + label
            first = False
    return tags, inexact


def window_labels(n_tokens: int, firsts: Sequence[tuple[int, int]], tags: Sequence[str],
                  label2id: dict[str, int]) -> list[int]:
    """Training labels of one window: the word's tag id on its first sub-token, -100 on
    every other token."""
    labels = [IGNORE] * n_tokens
    for pos, word in firsts:
        labels[pos] = label2id[tags[word]]
    return labels


def best_positions(windows: Sequence[Window]) -> dict[int, tuple[int, int]]:
    """word -> (window number in ``windows``, position) where the word has most context."""
    best: dict[int, tuple[int, int, int]] = {}
    for k, window in enumerate(windows):
        for pos, word in window.firsts:
            ctx = window.context(pos)
            if word not in best or ctx > best[word][2]:
                best[word] = (k, pos, ctx)
    return {w: (k, pos) for w, (k, pos, _) in best.items()}


def decode(words: Sequence[tuple[int, int]], tags: Sequence[str],
           confidences: Sequence[float] | None = None) -> list[dict]:
    """Entity spans from one BIO tag per word (see the module docstring). With
    ``confidences`` (one per word), each span gets a ``score``: the mean over its words."""
    spans: list[dict] = []
    current: list | None = None  # [type, first word, last word]

    def close():
        nonlocal current
        if current is not None:
            label, a, b = current
            span = {"start": words[a][0], "end": words[b][1], "label": label}
            if confidences is not None:
                span["score"] = float(sum(confidences[a:b + 1]) / (b - a + 1))
            spans.append(span)
            current = None

    for w, tag in enumerate(tags):
        if tag[:2] in ("B-", "I-"):
            prefix, label = tag[0], tag[2:]
        else:  # a model with plain type labels: continuation, as the pipeline reads it
            prefix, label = "I", tag
        if tag == "O" or not label:
            close()
        elif prefix == "I" and current is not None and current[0] == label:
            current[2] = w
        else:
            close()
            current = [label, w, w]
    close()
    return spans


def stride_for(max_length: int, n_special: int) -> int:
    """Overlap between windows: a quarter of the window's content, at most 128 tokens."""
    return max(0, min(128, (max_length - n_special) // 4))


def encode(tokenizer, texts: Sequence[str], max_length: int, *, stride: int | None = None,
           batch: int = 512) -> tuple[list[Window], list[list[tuple[int, int]]]]:
    """Tokenise ``texts`` into windows of at most ``max_length`` tokens; returns the windows
    (in text order) and each text's word character spans."""
    n_special = tokenizer.num_special_tokens_to_add()
    if stride is None:
        stride = stride_for(max_length, n_special)
    if max_length - n_special < 2 or stride >= max_length - n_special:
        raise ValueError(f"max_length {max_length} is too small for stride {stride}")
    windows: list[Window] = []
    words_per_text: list[list[tuple[int, int]]] = []
    for first in range(0, len(texts), batch):
        chunk = list(texts[first:first + batch])
        enc = tokenizer(chunk, truncation=True, max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding=False)
        mapping = enc["overflow_to_sample_mapping"]
        by_text: dict[int, list[int]] = {}
        for i, t in enumerate(mapping):
            by_text.setdefault(int(t), []).append(i)
        for t in range(len(chunk)):
            rows = by_text.get(t, [])
            offsets = [[tuple(o) for o in enc["offset_mapping"][i]] for i in rows]
            word_ids = [enc.word_ids(i) for i in rows]
            words = word_char_spans(offsets, word_ids)
            words_per_text.append(words)
            for i, offs, wids in zip(rows, offsets, word_ids):
                extra = {"token_type_ids": enc["token_type_ids"][i]} \
                    if "token_type_ids" in enc else {}
                windows.append(Window(text_index=first + t, input_ids=enc["input_ids"][i],
                                      attention_mask=enc["attention_mask"][i],
                                      firsts=first_subtokens(offs, wids, words), extra=extra))
    return windows, words_per_text


def group_windows(windows: Sequence[Window], n_texts: int) -> list[list[int]]:
    """For each text, the numbers of its windows in ``windows``."""
    out: list[list[int]] = [[] for _ in range(n_texts)]
    for k, w in enumerate(windows):
        out[w.text_index].append(k)
    return out


def merge_tags(windows: Sequence[Window], window_numbers: Sequence[int], n_words: int,
               tag_of, conf_of=None) -> tuple[list[str], list[float] | None]:
    """One tag per word of a text from its windows' per-token outputs.

    ``tag_of(window_number, position) -> str`` and optional ``conf_of(...) -> float``;
    each word is read where it has most context. Words no window saw are ``O``."""
    best = best_positions([windows[k] for k in window_numbers])
    tags = ["O"] * n_words
    confs = [1.0] * n_words if conf_of is not None else None
    for word, (j, pos) in best.items():
        k = window_numbers[j]
        tags[word] = tag_of(k, pos)
        if confs is not None:
            confs[word] = conf_of(k, pos)
    return tags, confs
