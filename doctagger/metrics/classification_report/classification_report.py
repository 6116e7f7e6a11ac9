"""Classification report: accuracy, macro and micro F1, per-label scores, confusion matrix.

An ``evaluate`` module shipped with doctagger (loaded by path, never from the Hub).

Configs:
- ``"default"``: single-label; ``predictions`` and ``references`` are integer class ids
  (``-1`` for "no / unknown class": it counts as wrong and is left out of the matrix);
- ``"multilabel"``: ``predictions`` and ``references`` are multi-hot rows (0/1 per label).

``compute(predictions=..., references=..., labels=["a", "b", ...])`` returns::

    {"accuracy": float,            # multi-label: exact-match (subset) accuracy
     "macro_f1": float, "micro_f1": float,
     "macro_precision": float, "macro_recall": float, "weighted_f1": float,
     "per_label": {label: {"precision", "recall", "f1", "support"}},
     "confusion_matrix": [[int]],  # single-label: rows gold, columns predicted
                                   # multi-label: one [[tn, fp], [fn, tp]] per label
     "labels": [label, ...], "n": int, "multi_label": bool}

Labels with no gold and no predicted example score 0 (scikit-learn's zero_division=0), so a
class the model never gets right pulls macro-F1 down, as it should.
"""
import datasets
import evaluate
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix
from sklearn.metrics import multilabel_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

_DESCRIPTION = __doc__
_CITATION = ""
_KWARGS_DESCRIPTION = """
Args:
    predictions: class ids (default config) or multi-hot rows (multilabel config).
    references: the gold values, in the same form.
    labels: the label names, in class-id order (default: "0", "1", ...).
Returns: see the module docstring.
"""


class ClassificationReport(evaluate.Metric):
    def _info(self):
        if self.config_name == "multilabel":
            features = datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("int64")),
                "references": datasets.Sequence(datasets.Value("int64")),
            })
        else:
            features = datasets.Features({
                "predictions": datasets.Value("int64"),
                "references": datasets.Value("int64"),
            })
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
        )

    def _compute(self, predictions, references, labels=None):
        multi = self.config_name == "multilabel"
        if labels is None:
            width = len(references[0]) if multi and len(references) else None
            if width is None:
                seen = [v for v in list(predictions) + list(references) if v >= 0]
                width = (max(seen) + 1) if seen else 0
            labels = [str(i) for i in range(width)]
        labels = [str(name) for name in labels]
        ids = list(range(len(labels)))
        n = len(references)
        if n == 0:
            return {"accuracy": 0.0, "macro_f1": 0.0, "micro_f1": 0.0, "macro_precision": 0.0,
                    "macro_recall": 0.0, "weighted_f1": 0.0,
                    "per_label": {name: {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                         "support": 0} for name in labels},
                    "confusion_matrix": [], "labels": labels, "n": 0, "multi_label": multi}
        if multi:
            y_true = [list(row) for row in references]
            y_pred = [list(row) for row in predictions]
            averaged_ids = None
        else:
            y_true = list(references)
            y_pred = list(predictions)
            averaged_ids = ids
        accuracy = accuracy_score(y_true, y_pred)
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=averaged_ids, average=None, zero_division=0)

        def averaged(kind):
            return precision_recall_fscore_support(
                y_true, y_pred, labels=averaged_ids, average=kind, zero_division=0)

        macro = averaged("macro")
        micro = averaged("micro")
        weighted = averaged("weighted")
        if multi:
            matrix = multilabel_confusion_matrix(y_true, y_pred).tolist()
        else:
            matrix = confusion_matrix(y_true, y_pred, labels=ids).tolist()
        per_label = {}
        for i, name in enumerate(labels):
            per_label[name] = {"precision": float(precision[i]), "recall": float(recall[i]),
                               "f1": float(f1[i]), "support": int(support[i])}
        return {
            "accuracy": float(accuracy),
            "macro_f1": float(macro[2]),
            "micro_f1": float(micro[2]),
            "macro_precision": float(macro[0]),
            "macro_recall": float(macro[1]),
            "weighted_f1": float(weighted[2]),
            "per_label": per_label,
            "confusion_matrix": matrix,
            "labels": labels,
            "n": n,
            "multi_label": multi,
        }
