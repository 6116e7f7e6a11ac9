"""What a conformance check found: :class:`ConformanceReport`, one :class:`Step` a step."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Step:
    name: str
    status: str  # "ok" | "failed" | "skipped"
    detail: str = ""
    seconds: float = 0.0


@dataclass
class ConformanceReport:
    """What :func:`check_task_type` found. ``ok`` is True when nothing broke;
    ``problems`` lists what did, one sentence each; ``str(report)`` shows every step."""

    task_type: str
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def assert_ok(self) -> None:
        """Raise AssertionError listing every problem (pytest shows the whole report)."""
        if self.problems:
            raise AssertionError(f"task type '{self.task_type}' does not conform:\n{self}")

    def __str__(self) -> str:
        marks = {"ok": "ok     ", "failed": "FAILED ", "skipped": "skipped"}
        lines = [f"{marks[s.status]} {s.name:<13} {s.seconds:6.2f}s  {s.detail}".rstrip()
                 for s in self.steps]
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)
