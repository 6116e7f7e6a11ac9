"""How a classifier runs at tagging time: plain fp32, or a faster int8/bf16 version of it
that is only kept when it gives the same answers.

``DOCTAGGER_RUNTIME`` (or ``HFPredictor(runtime=...)``) picks it for fine-tuned
classifiers (``Runtime``, checked window by window). The ``head`` method's frozen encoder
goes through the same ``Check``, text by text (``HeadPredictor``; there ``auto`` means bf16
on a CPU with native bf16, else fp32):

- ``auto`` (the default): on a CPU with native bf16 (AVX512-BF16/AMX), bf16 autocast;
  on other CPUs, the encoder's Linear layers quantised to int8
  (``torch.ao.quantization.quantize_dynamic``; the classification head stays fp32); either
  checked against fp32 on the first ``CHECK_ROWS`` windows; on a GPU, fp32;
- ``int8`` or ``bf16``: that one, checked the same way;
- ``torch``: fp32, nothing else.

The check runs both versions on the first windows tagged and compares the decisions (the
best label, or for multi-label each label against its threshold). If a probability moves by
more than ``MAX_PROB_DIFF``, or fewer than ``MIN_AGREEMENT`` of the decisions agree, the fast
version is dropped and fp32 is used from then on. While checking, the fp32 answers are the
ones returned, so the check never changes a prediction. ``Runtime.name`` says which one ran
(``torch-int8``, ``torch-fp32``, ...) and ``Runtime.reason`` why.

After the check, the fast version's answers are trusted only where they are clear: a window
whose decision margin (the gap between the two best probabilities; for multi-label, the
closest probability to its threshold) is under ``RECHECK_FACTOR`` times the largest
difference the check saw (at least ``MIN_RECHECK_MARGIN``) is run again in fp32. A decision
can only flip where the margin is smaller than the noise, so this keeps fp32's labels at
the cost of running a few percent of the windows twice (a fast version that would run more
than ``MAX_RECHECK_SHARE`` of the checked windows twice is dropped: it would be no faster) (measured in docs/tagging.md: bf16
alone changed 2-3 of 279 labels, all at margins under 0.04; with the re-check, 1,446 of
1,446 labels were fp32's).

ONNX Runtime is not used: measured here (docs/tagging.md) an exported MiniLM ran no faster
than torch, and its int8 version changed a quarter of the labels. torch's int8 dynamic
quantisation did the same on that model and is dropped by the check.
"""
from __future__ import annotations

import os
import warnings

MODES = ("auto", "torch", "int8", "bf16")
CHECK_ROWS = 64
MIN_AGREEMENT = 0.99
MAX_PROB_DIFF = 0.1
RECHECK_FACTOR = 3.0
MIN_RECHECK_MARGIN = 0.02
#: a fast version that would have to run more than this share of the rows again in fp32
#: is no faster than fp32: dropped
MAX_RECHECK_SHARE = 0.25


def requested_mode(mode: str | None = None) -> str:
    """The runtime asked for: ``mode``, else $DOCTAGGER_RUNTIME, else ``auto``."""
    from doctagger.errors import InvalidInputError

    value = (mode or os.environ.get("DOCTAGGER_RUNTIME") or "auto").strip().lower()
    if value not in MODES:
        raise InvalidInputError(f"unknown runtime '{value}' (DOCTAGGER_RUNTIME): use one of "
                         f"{', '.join(MODES)}")
    return value


def quantize_int8(model):
    """A copy of ``model`` whose encoder Linear layers are dynamically quantised to int8
    (the head is left in fp32); None when this torch build cannot."""
    import copy

    import torch

    if "none" == str(torch.backends.quantized.engine).lower():
        return None
    try:
        quantized = copy.deepcopy(model)
        base = getattr(quantized, getattr(quantized, "base_model_prefix", ""), None)
        target = getattr(base, "encoder", None) if base is not None else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if target is not None:
                base.encoder = torch.ao.quantization.quantize_dynamic(
                    target, {torch.nn.Linear}, dtype=torch.qint8)
            else:
                quantized = torch.ao.quantization.quantize_dynamic(
                    quantized, {torch.nn.Linear}, dtype=torch.qint8)
        return quantized.eval()
    except (RuntimeError, AttributeError, NotImplementedError):
        return None


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 matrix products natively (else bf16 is slower)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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


class Check:
    """The check every fast runtime goes through, on probabilities: ``compare(exact, fast)``
    on the first ``CHECK_ROWS`` rows (windows, or texts for the head method) keeps or drops
    the fast version; afterwards ``unclear(probs)`` says which rows must be computed again
    in fp32. ``name`` says what runs (``torch-fp32`` when there is no fast version or it
    was dropped) and ``reason`` why."""

    def __init__(self, fast_name: str | None, *, rows: str = "rows", multi_label: bool = False,
                 thresholds=None, reason: str = "no faster runtime here"):
        self.fast_name = fast_name
        self.rows = rows  # what a row is, in the reason
        self.multi_label = multi_label
        self.thresholds = thresholds
        self.checked = self.agreed = 0
        self.max_diff = 0.0
        self.recheck_margin = MIN_RECHECK_MARGIN
        self.rechecked = 0  # rows run again in fp32 after the check
        self._margins: list[float] = []  # the fast version's margins on the checked rows
        self.dropped = fast_name is None
        if fast_name is None:
            self.name, self.reason = "torch-fp32", reason
        else:
            self.name, self.reason = f"{fast_name} (checking)", "checking against fp32"

    @property
    def checking(self) -> bool:
        return not self.dropped and self.checked < CHECK_ROWS

    def compare(self, exact, fast) -> None:
        """Record rows answered both ways (probabilities, same shape); decide once
        ``CHECK_ROWS`` rows are in."""
        diff = float((exact - fast).abs().max()) if len(exact) else 0.0
        self.max_diff = max(self.max_diff, diff)
        self.recheck_margin = max(MIN_RECHECK_MARGIN, RECHECK_FACTOR * self.max_diff)
        # what the fast version with its re-check would have answered
        fast_margins = margins(fast, self.multi_label, self.thresholds)
        self._margins.extend(fast_margins.tolist())
        unclear = fast_margins < self.recheck_margin
        answered = torch_where(unclear, exact, fast)
        same = (decisions(exact, self.multi_label, self.thresholds)
                == decisions(answered, self.multi_label, self.thresholds)).all(-1)
        self.checked += len(exact)
        self.agreed += int(same.sum())
        if diff > MAX_PROB_DIFF:
            self._give_up(f"a probability moved by {diff:.3f} against fp32")
        elif self.checked >= CHECK_ROWS:
            rate = self.agreed / self.checked
            again = sum(m < self.recheck_margin for m in self._margins) / len(self._margins)
            if again > MAX_RECHECK_SHARE:
                self._give_up(f"{again:.0%} of the {self.rows} would have to run again in "
                              f"fp32 (margins under {self.recheck_margin:.3f}): no faster")
            elif rate >= MIN_AGREEMENT:
                self.name = self.fast_name
                self.reason = (f"agreed with fp32 on {self.agreed}/{self.checked} "
                               f"{self.rows}; {self.rows} with a margin under "
                               f"{self.recheck_margin:.3f} are run again in fp32")
            else:
                self._give_up(f"agreed with fp32 on only {self.agreed}/{self.checked} "
                              f"{self.rows}")

    def unclear(self, probs):
        """Indices of the rows of the fast version's ``probs`` too close to call."""
        rows = (margins(probs, self.multi_label, self.thresholds)
                < self.recheck_margin).nonzero().flatten()
        self.rechecked += len(rows)
        return rows

    def _give_up(self, why: str) -> None:
        self.dropped = True
        self.name, self.reason = "torch-fp32", f"{self.fast_name} dropped: {why}"

    def __str__(self) -> str:
        return self.name


class Runtime(Check):
    """``runtime(ids, mask) -> probabilities`` for a sequence-classification model, checked
    window by window."""

    def __init__(self, model, *, device: str = "cpu", mode: str | None = None,
                 multi_label: bool = False, thresholds=None):
        self.model = model
        self.device = device
        self.mode = requested_mode(mode)
        self.fast = None  # the candidate: a callable (ids, mask) -> logits
        reason = "asked for" if self.mode == "torch" else "no faster runtime here"
        mode = self.mode
        if mode == "auto" and device == "cpu":
            mode = "bf16" if bf16_supported() else "int8"
        fast_name = None
        if device == "cpu" and mode == "int8":
            quantized = quantize_int8(model)
            if quantized is not None:
                self.fast, fast_name = _plain(quantized), "torch-int8"
            else:
                reason = "int8 is not available in this torch build"
        elif device == "cpu" and mode == "bf16":
            self.fast, fast_name = _bf16(model), "torch-bf16"
        super().__init__(fast_name, rows="windows", multi_label=multi_label,
                         thresholds=thresholds, reason=reason)

    def _probabilities(self, logits):
        logits = logits.float()
        return logits.sigmoid() if self.multi_label else logits.softmax(-1)

    def __call__(self, ids, mask):
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self.fast is None:
            return self._exact(ids, mask)
        if not self.checking:
            return self._fast_with_recheck(ids, mask)
        exact = self._exact(ids, mask)
        self.compare(exact, self._probabilities(self.fast(ids, mask)))
        return exact  # while checking, fp32's answers

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


def _plain(model):
    def forward(ids, mask):
        return model(input_ids=ids, attention_mask=mask).logits
    return forward


def _bf16(model):
    def forward(ids, mask):
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=ids, attention_mask=mask).logits.float()
    return forward
