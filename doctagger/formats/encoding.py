"""Reading label files into text whatever their encoding.

Order tried: a byte-order mark (UTF-8, stripped; UTF-16 as Excel's "Unicode text" writes
it), then UTF-8, then cp1252 (Windows Latin-1), then latin-1 (never fails). A fallback to
cp1252/latin-1 adds a warning, so the caller can tell the user accents may be wrong.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path

from doctagger.errors import InvalidInputError, NotFoundError


@dataclass
class DecodedText:
    text: str
    encoding: str  # utf-8 | utf-8-sig | utf-16 | cp1252 | latin-1
    warnings: list[str] = field(default_factory=list)


def decode_bytes(data: bytes, name: str = "the file") -> DecodedText:
    """Decode ``data``; see the module docstring for the order of encodings tried."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return DecodedText(data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig")
        except UnicodeDecodeError:
            pass  # a BOM followed by junk: fall through to the fallbacks below
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return DecodedText(data.decode("utf-16"), "utf-16")
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"{name}: starts with a UTF-16 byte-order mark but is not "
                                    f"valid UTF-16 ({e.reason}); re-save it as UTF-8") from None
    if b"\x00" in data[:8192]:
        raise InvalidInputError(f"{name}: looks like a binary file (it contains NUL bytes); "
                                "give a CSV, JSONL or CoNLL text file")
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
    for enc in ("cp1252", "latin-1"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        label = "cp1252 (Windows Latin-1)" if enc == "cp1252" else "latin-1"
        return DecodedText(text, enc, [
            f"{name}: not valid UTF-8 (first bad byte on line {line}); read it as {label}. "
            "Check accented characters, or re-save the file as UTF-8"])
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def read_text(path) -> DecodedText:
    """Read and decode a whole file; NotFoundError / InvalidInputError when it cannot be read."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{p}: no such file; check the path") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{p}: is a folder; give a label file") from None
    except OSError as e:
        raise InvalidInputError(f"{p}: cannot read it ({e.strerror or e})") from None
    return decode_bytes(data, str(path))


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only (not on the Unicode separators ``str.splitlines`` also uses, which
    may appear inside JSON strings), dropping a trailing ``\\r`` (Windows line endings)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
