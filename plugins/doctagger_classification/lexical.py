"""Lexical evidence beside the embeddings: TF-IDF word 1-2-grams and a logistic regression,
mixed into the head's probabilities at a weight the user's own labels choose.

A frozen sentence encoder reads meaning, not the rare words that often decide a label (a
party's trade, "HOSTING AGREEMENT", a ticker); TF-IDF reads exactly those. Neither wins
everywhere (bench/quality, docs/classification.md), so ``train`` measures, on out-of-fold
predictions of the training split (grouped by document: a document's own words never help
score it), the macro-F1 of the mix

    log p = w * log p_head + (1 - w) * log p_lexical      (then a temperature, renormalised)

for w in :data:`MIXES`, and keeps the best, unless it beats w = 1 (no lexical part, the
simpler model) by no more than one standard error of the per-fold differences
(``head.one_standard_error``: on 60-100 labels the plain best weight cost 1-2 points on
unseen data). Single-label tasks only.

Saved without pickle: ``lexical.safetensors`` (``weight`` labels x terms, ``bias``,
``idf``) and ``lexical.json`` (the terms in column order and the vectorizer's settings);
scikit-learn's ``TfidfVectorizer(vocabulary=terms, **settings)`` with ``idf_ = idf``
rebuilds the same features (see head.USAGE).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

LEXICAL_FILE = "lexical.safetensors"
LEXICAL_CONFIG = "lexical.json"
#: the TfidfVectorizer settings (bench/quality's TF-IDF baseline reads the same)
SETTINGS = {"sublinear_tf": True, "ngram_range": [1, 2], "lowercase": True}
#: terms kept (the most frequent); more cost memory and time for no measured gain
MAX_TERMS = 50_000
#: C of the lexical logistic regression, chosen by cross-validation
CS = [1.0, 4.0, 16.0, 64.0]
#: weights of the embedding head in the mix, tried in this order (1.0: no lexical part)
MIXES = (1.0, 0.8, 0.65, 0.5, 0.35, 0.2)
#: temperatures tried for the mixed log-probabilities (least out-of-fold log-loss)
TEMPERATURES = [round(0.25 * 16 ** (i / 40), 4) for i in range(41)]  # 0.25 .. 4
NEVER = -1e4  # the logit of a label with no training example: never chosen


@dataclass
class Choice:
    """What cross-validation chose: the mix weight of the head, the lexical C, the
    temperature, and every weight's out-of-fold macro-F1."""

    mix: float
    c: float
    temperature: float
    scores: dict
    folds: int

    @property
    def used(self) -> bool:
        return self.mix < 1.0


def vectorizer(n_texts: int, terms: list[str] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    settings = dict(SETTINGS, ngram_range=tuple(SETTINGS["ngram_range"]))
    if terms is not None:
        return TfidfVectorizer(vocabulary={t: i for i, t in enumerate(terms)}, **settings)
    return TfidfVectorizer(min_df=2 if n_texts > 300 else 1, max_features=MAX_TERMS,
                           **settings)


def logits_of(clf, x, n_labels: int):
    """(n, n_labels) logits of a fitted LogisticRegression, NEVER for labels it never saw
    (two classes: the one decision value split as (-z/2, z/2), as head.fit saves it)."""
    import numpy as np

    z = clf.decision_function(x)
    out = np.full((x.shape[0], n_labels), NEVER, dtype=np.float64)
    classes = list(clf.classes_)
    if len(classes) == 2:
        out[:, classes[0]], out[:, classes[1]] = -z / 2, z / 2
    else:
        out[:, classes] = z
    return out


def log_softmax(z):
    import numpy as np

    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def out_of_fold(make, x, y, splits, n_labels: int):
    import numpy as np

    out = np.zeros((x.shape[0], n_labels))
    for fit_rows, test_rows in splits:
        out[test_rows] = logits_of(make().fit(x[fit_rows], y[fit_rows]), x[test_rows],
                                   n_labels)
    return out


def _fold_f1(y, log_p, splits) -> list[float]:
    from sklearn.metrics import f1_score

    return [float(f1_score(y[rows], log_p[rows].argmax(axis=1), average="macro"))
            for _, rows in splits]


def _model(c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced")


def _macro_f1(y, log_p) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, log_p.argmax(axis=1), average="macro"))


def choose(texts, x, y, *, head_c: float, head_scale: float, n_labels: int, groups=None,
           seed: int = 42) -> Choice | None:
    """Cross-validate the mix (module docstring) on the training texts ``texts``, their
    head features ``x`` and label indices ``y``; None when the data is too small to
    cross-validate (then the head alone is kept)."""
    import numpy as np

    y = np.asarray(y, dtype=int)
    from doctagger_classification.head import folds_for

    split = folds_for(y, groups, seed)  # the head's folds: grouped by document
    if split is None:
        return None
    cv, groups, _ = split
    splits = list(cv.split(np.zeros(len(y)), y, groups))
    x = np.asarray(x, dtype=np.float32)
    head_log = log_softmax(head_scale * out_of_fold(lambda: _model(head_c), x, y, splits,
                                                    n_labels))
    features = vectorizer(len(texts)).fit_transform(texts)
    best_c, best = CS[0], None
    for c in CS:
        lexical = log_softmax(out_of_fold(lambda: _model(c), features, y, splits, n_labels))
        score = _macro_f1(y, lexical)
        if best is None or score > best[0] + 1e-9:
            best, best_c = (score, lexical), c
    lexical = best[1]
    scores, per_fold = {}, {}
    for w in MIXES:
        mixed = w * head_log + (1 - w) * lexical
        scores[w] = round(_macro_f1(y, mixed), 4)
        per_fold[w] = _fold_f1(y, mixed, splits)
    from doctagger_classification.head import one_standard_error

    mix = one_standard_error(per_fold, 1.0, len(splits))
    mixed = mix * head_log + (1 - mix) * lexical
    losses = [(-log_softmax(t * mixed)[np.arange(len(y)), y].mean(), t) for t in TEMPERATURES]
    temperature = min(losses)[1] if mix < 1.0 else 1.0
    return Choice(mix=mix, c=best_c, temperature=float(temperature),
                  scores={f"{w:g}": s for w, s in scores.items()}, folds=cv.get_n_splits())


def fit(texts, y, *, c: float, n_labels: int):
    """(terms, idf, weight (labels, terms), bias (labels)) of the lexical model."""
    import numpy as np

    from doctagger_classification.head import linear_layer

    vec = vectorizer(len(texts))
    features = vec.fit_transform(texts)
    clf = _model(c).fit(features, np.asarray(y, dtype=int))
    weight, bias = linear_layer(clf, n_labels)
    return vec.get_feature_names_out().tolist(), vec.idf_, weight, bias


def save(folder: Path, terms, idf, weight, bias, choice: Choice) -> dict:
    """Write the lexical model; returns what head.json records of it."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"weight": np.ascontiguousarray(weight, dtype=np.float32),
               "bias": np.ascontiguousarray(bias, dtype=np.float32),
               "idf": np.ascontiguousarray(idf, dtype=np.float32)},
              str(folder / LEXICAL_FILE))
    (folder / LEXICAL_CONFIG).write_text(json.dumps(
        {"settings": SETTINGS, "terms": list(terms)}, ensure_ascii=False))
    return {"mix": choice.mix, "temperature": choice.temperature, "C": choice.c,
            "terms": len(terms), "file": LEXICAL_FILE, "config": LEXICAL_CONFIG}


class Lexical:
    """A saved lexical model: ``log_probabilities(texts)`` and ``mix(head_probs, texts)``."""

    def __init__(self, folder: Path, record: dict):
        from safetensors.numpy import load_file

        folder = Path(folder)
        config = json.loads((folder / record.get("config", LEXICAL_CONFIG)).read_text())
        tensors = load_file(str(folder / record.get("file", LEXICAL_FILE)))
        self.vectorizer = vectorizer(0, config["terms"])
        self.vectorizer.idf_ = tensors["idf"].astype("float64")
        self.weight, self.bias = tensors["weight"], tensors["bias"]
        self.mix_weight = float(record["mix"])
        self.temperature = float(record.get("temperature", 1.0))

    def log_probabilities(self, texts):
        import numpy as np

        features = self.vectorizer.transform([t or "" for t in texts])
        return log_softmax(np.asarray(features @ self.weight.T, dtype=np.float64) + self.bias)

    def mix(self, head_probs, texts):
        """The mixed probabilities (a torch tensor like ``head_probs``)."""
        import numpy as np
        import torch

        head_log = np.log(np.clip(head_probs.double().numpy(), 1e-30, None))
        mixed = self.mix_weight * head_log + (1 - self.mix_weight) * self.log_probabilities(texts)
        return torch.from_numpy(np.exp(log_softmax(self.temperature * mixed))).to(
            head_probs.dtype)
