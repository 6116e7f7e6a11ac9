"""Entity-level precision, recall and F1 of tag sequences, with seqeval.

An ``evaluate`` module shipped with doctagger (loaded by path, never from the Hub).
``predictions`` and ``references`` are lists of tag sequences in the IOB2 scheme
(``B-PER``, ``I-PER``, ``O``). An entity counts as found only when its type and both of its
boundaries match (seqeval's strict IOB2 mode).

``compute(predictions=..., references=...)`` returns::

    {"precision": float, "recall": float, "f1": float,        # micro over entities
     "macro_f1": float,                                       # mean of the per-type F1
     "accuracy": float,                                       # tag accuracy
     "per_type": {type: {"precision", "recall", "f1", "support"}},
     "n": int}                                                # sequences scored
"""
import datasets
import evaluate
from seqeval.metrics import accuracy_score
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

_DESCRIPTION = __doc__
_CITATION = ""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted IOB2 tag sequences.
    references: list of gold IOB2 tag sequences (same lengths).
Returns: see the module docstring.
"""


class SeqevalEntities(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
        )

    def _compute(self, predictions, references):
        y_true = [list(seq) for seq in references]
        y_pred = [list(seq) for seq in predictions]
        has_entities = any(tag != "O" for seq in y_true + y_pred for tag in seq)
        if not y_true or not has_entities:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "macro_f1": 0.0,
                    "accuracy": float(accuracy_score(y_true, y_pred)) if y_true else 0.0,
                    "per_type": {}, "n": len(y_true)}
        report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2,
                                       output_dict=True, zero_division=0)
        per_type = {}
        for name, row in report.items():
            if name.endswith(" avg"):
                continue
            per_type[name] = {"precision": float(row["precision"]),
                              "recall": float(row["recall"]),
                              "f1": float(row["f1-score"]), "support": int(row["support"])}
        micro = report["micro avg"]
        macro = report["macro avg"]
        return {
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]),
            "macro_f1": float(macro["f1-score"]),
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "per_type": per_type,
            "n": len(y_true),
        }
