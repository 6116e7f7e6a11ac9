"""Runs the steps of a conformance check one by one and records what each found."""
from __future__ import annotations

import time
import traceback
from pathlib import Path

from .report import ConformanceReport, Step

_KIT = Path(__file__).parent  # frames in the kit's own files are not the task type's


class _Stop(Exception):
    """A step failed in a way that makes the later steps meaningless."""


class _Checker:
    def __init__(self, report: ConformanceReport):
        self.report = report
        self._step_problems: list[str] = []

    def problem(self, message: str) -> None:
        self._step_problems.append(message)

    def run(self, name: str, fn, *, fatal: bool = False):
        """Run one step; record its problems. Later steps are skipped when the step raises
        _Stop, or when a ``fatal`` step raises (later steps need what it makes)."""
        self._step_problems = []
        started = time.perf_counter()
        result = None
        stop = False
        try:
            result = fn()
        except _Stop:  # the step itself says nothing after it can run
            stop = True
        except Exception as exc:  # a fatal step that could not finish stops the check
            self.problem(f"{name}: raised {_describe(exc)}")
            stop = fatal
        seconds = time.perf_counter() - started
        problems = _once(self._step_problems)
        status = "failed" if problems else "ok"
        detail = problems[0] if problems else (result if isinstance(result, str) else "")
        self.report.steps.append(Step(name, status, detail, seconds))
        self.report.problems.extend(problems)
        if stop and self._step_problems:
            raise _Stop
        return result

    def skip(self, name: str, why: str) -> None:
        self.report.steps.append(Step(name, "skipped", why))


def _once(messages: list[str]) -> list[str]:
    """Each message once, in order; one said n times gets "(n times)"."""
    counts: dict[str, int] = {}
    for message in messages:
        counts[message] = counts.get(message, 0) + 1
    return [m if n == 1 else f"{m} ({n} times)" for m, n in counts.items()]


def _describe(exc: BaseException) -> str:
    """'ValueError: message (at file.py:12 in fn)' — the frame of the task type's code."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if Path(frame.filename).parent != _KIT:
            where = f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
            break
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}"
