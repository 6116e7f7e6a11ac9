"""Small, dependency-free helpers shared by the index and the extractors (kept out of
doctagger.index so that importing them does not import sqlite-utils)."""
from __future__ import annotations

from datetime import datetime, timezone


def now() -> str:
    """The current UTC time as an ISO 8601 string, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def text_hash(text: str) -> str:
    """Hash of a text with white space folded: equal for the same words re-extracted."""
    import hashlib  # here: OpenSSL's start-up is 2-3 ms a command that hashes nothing

    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()
