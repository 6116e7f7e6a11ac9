"""Sample data: :func:`sample_examples` makes a few labelled examples in which each label
is plainly visible in the text."""
from __future__ import annotations

import re
from typing import Any, Sequence

from doctagger.tasktypes import Example


_FILLERS = [
    "The quarterly report for the northern office",
    "A short note written after the meeting",
    "Minutes of the annual review, second section",
    "This passage was copied from page three",
    "An appendix with tables and a summary",
    "Letter sent to the committee last spring",
]


def sample_examples(labels: Sequence[str], *, value_kind: str = "class",
                    multi_label: bool = False, level: str = "chunk",
                    per_label: int = 4) -> list[Example]:
    """A few labelled examples in which each label is plainly visible in the text.

    - ``class``: every text names its label ("... about invoice ..."), value ``label``
      (``[label]`` for multi-label; the last text of each round carries two labels);
    - ``spans``: every text holds one entity per label, written ``LabelEntity<n>``, with a
      span over it.
    Each example is its own document (``group``). For ``level="document"`` examples carry
    ``parts`` (their sentences), as the core builds them from chunks."""
    out: list[Example] = []
    labels = list(labels)
    for i in range(per_label):
        filler = _FILLERS[i % len(_FILLERS)]
        for j, label in enumerate(labels):
            n = i * len(labels) + j
            if value_kind == "spans":
                text, spans = f"{filler} (item {n}). ", []
                for k, other in enumerate(labels[j:] + labels[:j]):
                    entity = f"{other.capitalize()}Entity{n}{k}"
                    text += "It names "
                    spans.append({"start": len(text), "end": len(text) + len(entity),
                                  "label": other})
                    text += entity + ". "
                text = text.strip()
                value: Any = spans
            else:
                text = f"{filler} (item {n}) is about {label}. Every line here concerns {label}."
                value = label
                if multi_label:
                    value = [label]
                    if i == per_label - 1 and len(labels) > 1:
                        other = labels[(j + 1) % len(labels)]
                        text += f" It also mentions {other}."
                        value = sorted({label, other})
            parts = re.split(r"(?<=\.) ", text) if level == "document" else None
            out.append(Example(text=text, value=value, group=f"doc-{n}", parts=parts,
                               chunk_id=None if level == "document" else n + 1,
                               document_id=n + 1))
    return out
