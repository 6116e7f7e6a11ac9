"""Typed library errors.

Every error doctagger raises on purpose is a DoctaggerError whose message is one line that
says what went wrong and what to do. The CLI maps them to Click errors in one place
(doctagger.cli.DoctaggerGroup); library users catch them as they like.
"""
from __future__ import annotations


class DoctaggerError(Exception):
    """Base class: the message is one line, written for the user."""


class NotFoundError(DoctaggerError):
    """A document, task, model version or file that was asked for does not exist."""


class InvalidInputError(DoctaggerError):
    """Input the user gave us is wrong: a bad option value, a bad label, a bad file."""


class ImportFormatError(InvalidInputError):
    """A line of an import file is malformed. Carries the file and the 1-based line number."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {message}")


class InvalidLabelError(InvalidInputError):
    """A label value does not fit the task (unknown class, bad span, ...)."""


class PluginError(DoctaggerError):
    """A plugin is missing, broken, or provides something malformed."""


class TrainingError(DoctaggerError):
    """Training cannot start or cannot finish (no data, a label with no example, ...)."""


class IndexLockedError(DoctaggerError):
    """The index stayed locked by another process for longer than we wait."""
