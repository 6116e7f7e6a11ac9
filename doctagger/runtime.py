"""Faster arithmetic at prediction time, kept only where it gives fp32's answers.

A task type's predictor may run its model in bf16 (CPUs with native bf16) or int8 instead
of fp32. ``Check`` is the bookkeeping that makes that safe, whatever a "row" is (a window
of a classifier, a text of the head method, a window of an NER model):

1. on the first ``CHECK_ROWS`` rows both versions run; fp32's answers are the ones
   returned. For each row the caller reports the largest probability difference
   (``see``), then the fast version's *margin* (how far the row is from changing a
   decision) and whether the decisions agree once close rows are re-run (``tally``);
2. the fast version is dropped when a probability moved by more than ``MAX_PROB_DIFF``,
   fewer than ``MIN_AGREEMENT`` of the rows agree, or more than ``MAX_RECHECK_SHARE`` of
   them would have to be re-run (it would be no faster);
3. afterwards, ``unclear(margins)`` names the rows whose margin is under ``RECHECK_FACTOR``
   times the largest difference seen (at least ``MIN_RECHECK_MARGIN``): the caller runs
   them again in fp32. A decision can only flip where the margin is smaller than the
   noise, so the labels stay fp32's;
4. and one call in ``AUDIT_EVERY`` (``auditing()``) runs both ways again and is tallied
   like the first rows (fp32's answers are used): a larger difference widens the re-check
   margin, and the rules of step 2 can still drop the fast version. Callers take rows in
   length order, so the first rows are the shortest; the audits sample the others.

``DOCTAGGER_RUNTIME`` (``requested_mode``) picks the version: ``auto`` (the default: bf16
on a CPU with native bf16, else fp32; :func:`resolve`), ``torch`` (fp32 only), ``bf16``,
``int8``. :func:`fast_version` builds the fast callable for any model. The measurements
are in docs/tagging.md.
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
#: after the check, one call in this many also runs in fp32 and is tallied (an audit): the
#: rows checked first are the shortest (batches go by length), so later ones are sampled too
AUDIT_EVERY = 16
#: why ``auto`` runs fp32 on a CPU without native bf16
AUTO_FP32_CPU = "no native bf16 on this CPU (DOCTAGGER_RUNTIME=int8 tries int8)"


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
    (a task head is left in fp32); None when this torch build cannot."""
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


def resolve(mode: str | None, device) -> tuple[str, str]:
    """(``bf16``, ``int8`` or ``torch``, why ``torch`` when it is): what runs on ``device``
    for the requested ``mode`` (else ``DOCTAGGER_RUNTIME``). ``auto``: bf16 on a CPU with
    native bf16, else fp32 (int8 only when asked: it changed labels on every model measured,
    docs/tagging.md); bf16 and int8 are for CPUs."""
    mode = requested_mode(mode)
    on_cpu = str(device).startswith("cpu")
    if mode == "auto":
        if on_cpu and bf16_supported():
            return "bf16", ""
        return "torch", AUTO_FP32_CPU if on_cpu else f"fp32 on {device}"
    if mode in ("bf16", "int8") and not on_cpu:
        return "torch", f"{mode} is for CPUs; on {device} the model runs in fp32"
    return mode, "asked for" if mode == "torch" else ""


def fast_version(model, mode: str | None, device, call):
    """(fast callable or None, its name or None, why fp32 when None) for ``model`` on
    ``device`` (the mode from :func:`resolve`). The callable is ``call(model, *args)`` under
    bf16 autocast, or ``call(int8 copy of model, *args)``; give its name to :class:`Check`."""
    mode, reason = resolve(mode, device)
    if mode == "bf16":
        def run(*args):
            import torch

            with torch.autocast("cpu", dtype=torch.bfloat16):
                return call(model, *args)
        return run, "torch-bf16", ""
    if mode == "int8":
        quantized = quantize_int8(model)
        if quantized is None:
            return None, None, "int8 is not available in this torch build"
        return (lambda *args: call(quantized, *args)), "torch-int8", ""
    return None, None, reason


class Check:
    """The check a fast version goes through (see the module docstring). ``name`` says
    what runs (``torch-fp32`` when there is no fast version or it was dropped) and
    ``reason`` why; ``rows`` names a row in the reason."""

    def __init__(self, fast_name: str | None, *, rows: str = "rows",
                 reason: str = "no faster runtime here"):
        self.fast_name = fast_name
        self.rows = rows
        self.checked = self.agreed = 0
        self.max_diff = 0.0
        self.recheck_margin = MIN_RECHECK_MARGIN
        self.rechecked = 0  # rows run again in fp32 after the check
        self._margins: list[float] = []  # the fast version's margins on the checked rows
        self._calls = 0  # calls after the check, for the audits
        self.audits = 0
        self.dropped = fast_name is None
        if fast_name is None:
            self.name, self.reason = "torch-fp32", reason
        else:
            self.name, self.reason = f"{fast_name} (checking)", "checking against fp32"

    @property
    def checking(self) -> bool:
        return not self.dropped and self.checked < CHECK_ROWS

    @property
    def left_to_check(self) -> int:
        """Rows the first check still wants (0 once it is done or dropped)."""
        return max(0, CHECK_ROWS - self.checked) if not self.dropped else 0

    def auditing(self) -> bool:
        """Whether this call, after the check, should also run in fp32 and be tallied
        (one in ``AUDIT_EVERY``). Call it once per call of the model."""
        if self.dropped or self.checking:
            return False
        self._calls += 1
        if self._calls % AUDIT_EVERY:
            return False
        self.audits += 1
        return True

    def see(self, diff: float) -> None:
        """The largest probability difference of the rows about to be tallied; raises the
        re-check margin, which ``tally``'s "same once re-run" must use."""
        diff = float(diff)
        self.max_diff = max(self.max_diff, diff if diff == diff else float("inf"))  # NaN: inf
        self.recheck_margin = max(MIN_RECHECK_MARGIN, RECHECK_FACTOR * self.max_diff)

    def tally(self, margins: list[float], same: list[bool]) -> None:
        """Rows answered both ways: the fast version's margin of each, and whether its
        decisions equal fp32's once rows under the re-check margin take fp32's answer.
        Decides once ``CHECK_ROWS`` rows are in."""
        self._margins.extend(float(m) for m in margins)
        self.checked += len(same)
        self.agreed += sum(bool(s) for s in same)
        if self.max_diff > MAX_PROB_DIFF:
            self._give_up(f"a probability moved by {self.max_diff:.3f} against fp32")
        elif self.checked >= CHECK_ROWS:
            rate = self.agreed / self.checked
            again = (sum(not m >= self.recheck_margin for m in self._margins)
                     / len(self._margins))
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

    def unclear(self, margins: list[float]) -> list[int]:
        """Indices of the rows (by the fast version's margins) to run again in fp32."""
        rows = [i for i, m in enumerate(margins) if not m >= self.recheck_margin]  # NaN too
        self.rechecked += len(rows)
        return rows

    def _give_up(self, why: str) -> None:
        self.dropped = True
        self.name, self.reason = "torch-fp32", f"{self.fast_name} dropped: {why}"

    def __str__(self) -> str:
        return self.name
