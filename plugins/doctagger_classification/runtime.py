"""How a classifier runs at tagging time: plain fp32, or a faster int8/bf16 version of it
kept only where it gives fp32's answers (the check itself: doctagger.runtime).

``DOCTAGGER_RUNTIME`` (or ``HFPredictor(runtime=...)``) picks it. For fine-tuned
classifiers (``Runtime``, checked window by window):

- ``auto`` (the default): on a CPU with native bf16 (AVX512-BF16/AMX), bf16 autocast;
  elsewhere fp32 (doctagger.runtime.resolve);
- ``bf16``, or ``int8`` (the encoder's Linear layers quantised with
  ``torch.ao.quantization.quantize_dynamic``; the classification head stays fp32): that
  one, on a CPU; ``torch``: fp32, nothing else.

The ``head`` method's frozen encoder goes through the same check, text by text
(``HeadPredictor``, with ``ClassCheck``).

A row's decision is its best label, or for multi-label each label against its threshold;
its margin is the gap between the two best probabilities, or for multi-label the closest
probability to its threshold. Measured in docs/tagging.md: bf16 alone changed 2-3 of 279
labels, all at margins under 0.04; with the re-check, 1,446 of 1,446 labels were fp32's.
ONNX Runtime is not used: an exported MiniLM ran no faster than torch, and its int8
version changed a quarter of the labels, as torch's int8 did on that model (the check
drops it).
"""
from __future__ import annotations

# Re-exported for readers of this module; the check reads doctagger.runtime's values, so
# patch them there.
from doctagger.runtime import (CHECK_ROWS, MAX_PROB_DIFF, MAX_RECHECK_SHARE,  # noqa: F401
                               MIN_AGREEMENT, MIN_RECHECK_MARGIN, MODES, RECHECK_FACTOR,
                               Check, bf16_supported, fast_version, quantize_int8,
                               requested_mode)


def margins(probs, multi_label: bool, thresholds):
    """How far each row is from changing its decision: the gap between the two best
    probabilities, or for multi-label the smallest distance of a probability to its
    threshold."""
    import torch

    if multi_label:
        t = torch.tensor(list(thresholds) if thresholds else [0.5] * probs.shape[-1])
        return (probs - t).abs().min(-1).values
    if probs.shape[-1] < 2:
        return torch.ones(probs.shape[0])
    top = probs.topk(2, -1).values
    return top[:, 0] - top[:, 1]


def decisions(probs, multi_label: bool, thresholds):
    """What a prediction would say for each row: the best label, or a 0/1 row per label."""
    import torch

    if multi_label:
        t = torch.tensor(list(thresholds) if thresholds else [0.5] * probs.shape[-1])
        return (probs >= t).to(torch.int8)
    return probs.argmax(-1, keepdim=True)


class ClassCheck(Check):
    """doctagger.runtime.Check on class probabilities (rows x labels): ``compare(exact,
    fast)`` on the first rows, ``unclear(probs)`` afterwards."""

    def __init__(self, fast_name: str | None, *, rows: str = "rows", multi_label: bool = False,
                 thresholds=None, reason: str = "no faster runtime here"):
        super().__init__(fast_name, rows=rows, reason=reason)
        self.multi_label = multi_label
        self.thresholds = thresholds

    def compare(self, exact, fast) -> None:
        """Record rows answered both ways (probabilities, same shape)."""
        self.see(float((exact - fast).abs().max()) if len(exact) else 0.0)
        # what the fast version with its re-check would have answered
        fast_margins = margins(fast, self.multi_label, self.thresholds)
        unclear = fast_margins < self.recheck_margin
        answered = torch_where(unclear, exact, fast)
        same = (decisions(exact, self.multi_label, self.thresholds)
                == decisions(answered, self.multi_label, self.thresholds)).all(-1)
        self.tally(fast_margins.tolist(), same.tolist())

    def unclear(self, probs):
        """Indices (a tensor) of the rows of the fast version's ``probs`` too close to call."""
        import torch

        rows = super().unclear(margins(probs, self.multi_label, self.thresholds).tolist())
        return torch.tensor(rows, dtype=torch.long)


class Runtime(ClassCheck):
    """``runtime(ids, mask) -> probabilities`` for a sequence-classification model, checked
    window by window."""

    def __init__(self, model, *, device: str = "cpu", mode: str | None = None,
                 multi_label: bool = False, thresholds=None):
        self.model = model
        self.device = device
        self.mode = requested_mode(mode)
        # the candidate: a callable (ids, mask) -> logits, or None
        self.fast, fast_name, reason = fast_version(model, self.mode, device, _logits)
        super().__init__(fast_name, rows="windows", multi_label=multi_label,
                         thresholds=thresholds, reason=reason)

    def _probabilities(self, logits):
        logits = logits.float()
        return logits.sigmoid() if self.multi_label else logits.softmax(-1)

    def __call__(self, ids, mask):
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self.fast is None:
            return self._exact(ids, mask)
        if not self.checking and not self.auditing():
            return self._fast_with_recheck(ids, mask)
        exact = self._exact(ids, mask)
        self.compare(exact, self._probabilities(self.fast(ids, mask)))
        return exact  # while checking or auditing, fp32's answers

    def _exact(self, ids, mask):
        return self._probabilities(self.model(input_ids=ids, attention_mask=mask).logits)

    def _fast_with_recheck(self, ids, mask):
        probs = self._probabilities(self.fast(ids, mask))
        unclear = self.unclear(probs)
        if len(unclear):
            width = int(mask[unclear].sum(-1).max())  # their own longest, not the batch's
            probs[unclear] = self._exact(ids[unclear, :width], mask[unclear, :width])
        return probs

    def _give_up(self, why: str) -> None:
        super()._give_up(why)
        self.fast = None


def torch_where(rows, exact, fast):
    """``exact`` where ``rows`` (a bool per row) is set, else ``fast``."""
    return exact.where(rows.unsqueeze(-1), fast)


def _logits(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask).logits
