"""Honest scores for fine-tuned single-label models: one temperature for the logits.

A fine-tune stopped after a few epochs is often right and unsure: on the contract PDFs (87
training documents, 5 epochs) it got every held-out document right with a mean top
probability near 0.2, an expected calibration error of 0.82, so ``--min-score`` could not
tell a sure tag from a guess. Scaling the logits by one factor (temperature scaling) leaves
every decision, and so the held-out macro-F1, as it was, and makes the scores mean what
they say.

The factor is fitted on the held-out split's predictions (least log-loss), after the
held-out macro-F1 was measured; the calibration error ``train`` reports is cross-fitted
(each held-out example scored with a factor fitted on the other folds), so it is not
measured on the data the factor was fitted to. The factor is folded into the classifier's
last linear layer, so the saved folder gives the same scores in ``transformers.pipeline()``.
"""
from __future__ import annotations

from pathlib import Path

#: factors tried (fine-tuned models on little data are underconfident: factors above 1)
FACTORS = [round(0.25 * 120 ** (i / 60), 4) for i in range(61)]  # 0.25 .. 30
#: folds for the cross-fitted calibration error (fewer when the split is smaller)
FOLDS = 3
#: no factor is fitted on fewer held-out examples than this
MIN_EXAMPLES = 6


def _log_softmax(z):
    import numpy as np

    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit(log_p, gold) -> float:
    """The factor of :data:`FACTORS` with the least log-loss of ``softmax(factor * log_p)``
    (``log_p``: (n, labels) log-probabilities, ``gold``: label indices)."""
    import numpy as np

    log_p = np.asarray(log_p, dtype=np.float64)
    rows = np.arange(len(gold))
    losses = [(float(-_log_softmax(t * log_p)[rows, np.asarray(gold)].mean()), t)
              for t in FACTORS]
    return float(min(losses)[1])


def scaled(log_p, factor: float):
    """Probabilities ``softmax(factor * log_p)``."""
    import numpy as np

    return np.exp(_log_softmax(factor * np.asarray(log_p, dtype=np.float64)))


def cross_fitted_error(log_p, gold, seed: int = 42) -> float | None:
    """The expected calibration error of the top score when each example's factor is
    fitted on the other folds (None with fewer than :data:`MIN_EXAMPLES` examples)."""
    import numpy as np
    from sklearn.model_selection import KFold

    from doctagger.metrics.honesty import calibration_error

    log_p = np.asarray(log_p, dtype=np.float64)
    gold = np.asarray(gold)
    if len(gold) < MIN_EXAMPLES:
        return None
    probs = np.zeros_like(log_p)
    for fit_rows, test_rows in KFold(min(FOLDS, len(gold)), shuffle=True,
                                     random_state=seed).split(log_p):
        probs[test_rows] = scaled(log_p[test_rows], fit(log_p[fit_rows], gold[fit_rows]))
    return calibration_error(probs.max(axis=1).tolist(),
                             (probs.argmax(axis=1) == gold).tolist())


def apply(model_dir: Path, factor: float) -> None:
    """Fold ``factor`` into the saved model's classifier (its last linear layer with one
    output per label) and save the folder again."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from doctagger import training

    model_dir = Path(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)
            and m.out_features == model.config.num_labels]
    if not last:
        raise ValueError("no classifier layer with one output per label")
    with torch.no_grad():
        last[-1].weight.mul_(factor)
        if last[-1].bias is not None:
            last[-1].bias.mul_(factor)
    model.config.doctagger_temperature = float(factor)
    training.save_hf_model(model, None, model_dir)
