"""Metric modules for the ``evaluate`` library, shipped inside the package.

``evaluate.load("accuracy")`` fetches its script from the Hugging Face Hub and fails offline,
so doctagger ships its own modules here, one folder per module (``NAME/NAME.py``), and loads
them by path: ``evaluate.load(str(metric_path(NAME)))``. They compute with scikit-learn and
seqeval. ``evaluate`` copies a module by reading its imports line by line, so each module
writes one import per line.

- ``classification_report``: accuracy, macro/micro F1, per-label precision/recall/F1/support
  and the confusion matrix, for single-label (config ``"default"``, integer class ids) and
  multi-label (config ``"multilabel"``, multi-hot rows) classification;
- ``seqeval_entities``: entity-level precision/recall/F1 (overall and per entity type) of
  IOB2 tag sequences, with seqeval.

Use them through :func:`doctagger.training.load_metric`, or the higher-level
:func:`doctagger.training.classification_scores` / :func:`doctagger.training.ner_scores`.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the shipped metric modules."""
    return sorted(p.name for p in HERE.iterdir()
                  if p.is_dir() and (p / f"{p.name}.py").is_file())


def metric_path(name: str) -> Path:
    """The folder of the shipped module ``name`` (what ``evaluate.load`` is given)."""
    from doctagger.errors import NotFoundError

    path = HERE / name
    if not (path / f"{name}.py").is_file():
        raise NotFoundError(f"no metric module '{name}' in doctagger (shipped: "
                            f"{', '.join(available())})")
    return path


_loaded: dict = {}


def load_metric(name: str, config_name: str | None = None):
    """The shipped ``evaluate`` module ``name`` (e.g. ``"classification_report"``,
    ``"seqeval_entities"``), loaded by path: no network. Kept in memory (no cache files)
    and reused between calls."""
    key = (name, config_name)
    if key not in _loaded:
        import evaluate

        _loaded[key] = evaluate.load(str(metric_path(name)), config_name=config_name,
                                     keep_in_memory=True)
    return _loaded[key]


def _class_index(value, index: dict, n: int) -> int:
    if isinstance(value, bool) or value is None:
        return -1
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, str)):
        value = int(value)
        return value if 0 <= value < n else -1
    return index.get(str(value), -1)


def _multi_hot(value, index: dict, n: int) -> list[int]:
    row = [0] * n
    if value is None:
        return row
    if isinstance(value, str):
        value = [value]
    values = list(value)
    if len(values) == n and all(v in (0, 1, True, False) and not isinstance(v, str)
                                for v in values) and not all(isinstance(v, str) for v in values):
        return [int(bool(v)) for v in values]  # already multi-hot
    for v in values:
        i = _class_index(v, index, n)
        if i >= 0:
            row[i] = 1
    return row


def classification_scores(gold: list, pred: list, labels: list[str],
                          multi_label: bool = False) -> dict:
    """Accuracy, macro/micro F1, per-label precision/recall/F1/support and the confusion
    matrix, computed through the shipped ``classification_report`` evaluate module.

    ``gold``/``pred``: label values (class names; lists of names for multi-label) or class
    ids (ints; multi-hot rows for multi-label), in the order of ``labels``. A predicted name
    that is not in ``labels`` counts as wrong. Returns the module's dict: ``accuracy``,
    ``macro_f1``, ``micro_f1``, ``macro_precision``, ``macro_recall``, ``weighted_f1``,
    ``per_label``, ``confusion_matrix`` (single-label: rows gold, columns predicted;
    multi-label: one ``[[tn, fp], [fn, tp]]`` per label), ``labels``, ``n``,
    ``multi_label``."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold values but {len(pred)} predictions")
    labels = [str(name) for name in labels]
    index = {name: i for i, name in enumerate(labels)}
    n = len(labels)
    if multi_label:
        metric = load_metric("classification_report", "multilabel")
        refs = [_multi_hot(v, index, n) for v in gold]
        preds = [_multi_hot(v, index, n) for v in pred]
    else:
        metric = load_metric("classification_report")
        refs = [_class_index(v, index, n) for v in gold]
        preds = [_class_index(v, index, n) for v in pred]
    return metric.compute(predictions=preds, references=refs, labels=labels)


def spans_to_tags(gold_spans: list[dict], pred_spans: list[dict]) -> tuple[list[str], list[str]]:
    """IOB2 tag sequences for the gold and predicted character spans of one text, over
    the segments between every span boundary of either side: an entity matches only
    when its type and both boundaries match exactly. Overlapping spans on one side: the
    first (by start) wins."""
    bounds = sorted({b for s in list(gold_spans) + list(pred_spans)
                     for b in (int(s["start"]), int(s["end"]))})
    segments = list(zip(bounds, bounds[1:]))

    def tags(spans):
        out = ["O"] * len(segments)
        taken = [False] * len(segments)
        for span in sorted(spans, key=lambda s: (int(s["start"]), int(s["end"]))):
            inside = [i for i, (a, b) in enumerate(segments)
                      if a >= int(span["start"]) and b <= int(span["end"])]
            if not inside or any(taken[i] for i in inside):
                continue
            for n, i in enumerate(inside):
                out[i] = ("B-" if n == 0 else "I-") + str(span["label"])
                taken[i] = True
        return out

    return tags(gold_spans), tags(pred_spans)


def ner_scores(gold_spans_per_text: list[list[dict]],
               pred_spans_per_text: list[list[dict]]) -> dict:
    """Entity-level NER scores (exact type and boundaries), computed with seqeval through
    the shipped ``seqeval_entities`` evaluate module: ``precision``, ``recall``, ``f1``
    (micro over entities), ``macro_f1``, ``accuracy`` (of segment tags), ``per_type``
    ``{type: {precision, recall, f1, support}}``, ``n``. Spans are
    ``{"start", "end", "label"}`` character offsets, one list per text."""
    if len(gold_spans_per_text) != len(pred_spans_per_text):
        raise ValueError(f"{len(gold_spans_per_text)} gold texts but "
                         f"{len(pred_spans_per_text)} predicted")
    refs, preds = [], []
    for gold, pred in zip(gold_spans_per_text, pred_spans_per_text):
        g, p = spans_to_tags(gold or [], pred or [])
        if not g:  # no entity on either side: one "O" keeps the text counted
            g, p = ["O"], ["O"]
        refs.append(g)
        preds.append(p)
    return load_metric("seqeval_entities").compute(predictions=preds, references=refs)
