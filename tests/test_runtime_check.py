"""doctagger.runtime.Check: the bookkeeping that keeps a fast (bf16/int8) version only where
it gives fp32's answers. Pure Python, milliseconds."""
from __future__ import annotations

from doctagger import runtime
from doctagger.runtime import AUDIT_EVERY, CHECK_ROWS, Check


def _agree(check: Check, n: int, diff: float = 0.001, margin: float = 0.5) -> None:
    check.see(diff)
    check.tally([margin] * n, [True] * n)


def test_kept_after_the_first_rows_agree_then_audited_now_and_then():
    check = Check("torch-bf16", rows="windows")
    assert check.checking and check.left_to_check == CHECK_ROWS
    assert not check.auditing()  # no audits while checking
    _agree(check, CHECK_ROWS)
    assert str(check) == "torch-bf16" and not check.checking and check.left_to_check == 0
    calls = [check.auditing() for _ in range(3 * AUDIT_EVERY)]
    assert calls.count(True) == 3 == check.audits
    assert [i for i, audit in enumerate(calls) if audit] == [
        AUDIT_EVERY - 1, 2 * AUDIT_EVERY - 1, 3 * AUDIT_EVERY - 1]


def test_an_audit_that_sees_more_noise_widens_the_recheck_margin():
    check = Check("torch-bf16")
    _agree(check, CHECK_ROWS, diff=0.001)
    assert check.recheck_margin == runtime.MIN_RECHECK_MARGIN
    _agree(check, 16, diff=0.02)  # a longer row, later, differs more
    assert str(check) == "torch-bf16" and abs(check.recheck_margin - 0.06) < 1e-9
    assert check.unclear([0.05, 0.07, 0.5]) == [0]


def test_an_audit_that_disagrees_drops_the_fast_version():
    check = Check("torch-bf16", rows="texts")
    _agree(check, CHECK_ROWS)
    check.see(0.001)
    check.tally([0.9, 0.9], [False, False])  # 2 of 66 disagree: under 99 %
    assert check.dropped and str(check) == "torch-fp32"
    assert "agreed with fp32 on only 64/66 texts" in check.reason
    assert not check.auditing() and check.left_to_check == 0


def test_too_many_rows_to_rerun_or_a_large_or_nan_difference_drop_it():
    slow = Check("torch-int8")
    _agree(slow, CHECK_ROWS, margin=0.01)  # every row under the re-check margin
    assert slow.dropped and "no faster" in slow.reason
    moved = Check("torch-int8")
    _agree(moved, 8, diff=0.2)
    assert moved.dropped and "moved by 0.200" in moved.reason
    broken = Check("torch-int8")
    _agree(broken, 8, diff=float("nan"))
    assert broken.dropped
    assert Check("torch-bf16").unclear([float("nan"), 1.0]) == [0]  # NaN is never clear


def test_no_fast_version():
    check = Check(None, reason="asked for")
    assert check.dropped and not check.checking and str(check) == "torch-fp32"
    assert check.reason == "asked for" and not check.auditing()
