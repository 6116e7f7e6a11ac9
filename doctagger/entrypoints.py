"""Entry points of one group, as ``importlib.metadata.entry_points(group=...)`` gives them,
without importing ``importlib.metadata`` when nothing has yet.

``importlib.metadata`` imports email, zipfile, csv and importlib.resources (10-20 ms), and
parses each plugin's whole METADATA with the email parser for its name and version. Every
command loads the plugin host, so that is paid on each run, ``doctagger ingest`` with nothing
to do included. In an ordinary environment (``sys.path`` made of folders, distributions found
by the standard path finder) reading ``*.dist-info/entry_points.txt`` ourselves gives the same
entry points at a fraction of the cost. Anywhere else (a zip or an egg on ``sys.path``, an
import hook that finds distributions of its own), or when ``importlib.metadata`` is already
imported (a program or a test that uses it, and may have patched it), it is asked instead.
"""
from __future__ import annotations

import os
import re
import sys

_META_FILES = ("METADATA", "PKG-INFO")


class Distribution:
    """The distribution an entry point comes from: ``name`` and ``version`` from the
    headers of its METADATA (read when first asked for)."""

    def __init__(self, path: str):
        self._path = path
        self._headers: dict[str, str] | None = None

    def _header(self, key: str) -> str | None:
        if self._headers is None:
            self._headers = _read_headers(self._path)
        return self._headers.get(key)

    @property
    def name(self) -> str | None:
        return self._header("name")

    @property
    def version(self) -> str | None:
        return self._header("version")

    def __repr__(self):
        return f"<Distribution {self._path}>"


class EntryPoint:
    """An entry point: ``name = value`` in the ``[group]`` of a distribution's
    entry_points.txt; ``load()`` imports ``module`` and returns ``module:attr``."""

    #: as importlib.metadata.EntryPoint.pattern
    pattern = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]*)\s*)?"
                         r"((?P<extras>\[.*\])\s*)?$")

    def __init__(self, name: str, value: str, group: str, dist: Distribution | None = None):
        self.name, self.value, self.group, self.dist = name, value, group, dist

    def load(self):
        import importlib

        match = self.pattern.match(self.value)
        obj = importlib.import_module(match.group("module"))
        for attr in filter(None, (match.group("attr") or "").split(".")):
            obj = getattr(obj, attr)
        return obj

    def __repr__(self):
        return f"EntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r})"


def entry_points(group: str) -> list:
    """The entry points of ``group`` of every installed distribution (the first of each
    name on ``sys.path``), from importlib.metadata when it is loaded or needed."""
    if "importlib.metadata" in sys.modules or not _plain_environment():
        from importlib import metadata

        return list(metadata.entry_points(group=group))
    return scan(group)


def _plain_environment() -> bool:
    """True when distributions can only be folders on sys.path found by the path finder."""
    import importlib.machinery

    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            return False
    for entry in sys.path:
        if os.path.isfile(entry or ".") or (entry or ".").lower().endswith(".egg"):
            return False
    return True


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def scan(group: str) -> list[EntryPoint]:
    """``group``'s entry points from the ``*.dist-info`` and ``*.egg-info`` folders on
    sys.path, read as importlib.metadata reads them."""
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        try:
            children = os.listdir(entry or ".")
        except OSError:
            continue
        for child in children:
            low = child.lower()
            if not low.endswith((".dist-info", ".egg-info")):
                continue
            key = _normalize(low.rpartition(".")[0].partition("-")[0])
            if key in seen:  # an earlier folder on sys.path holds this distribution
                continue
            seen.add(key)
            path = os.path.join(entry, child)
            text = _read(os.path.join(path, "entry_points.txt"))
            if not text or f"[{group}]" not in text:
                continue
            dist = Distribution(path)
            found.extend(EntryPoint(name, value, group, dist)
                         for section, name, value in _pairs(text) if section == group)
    return found


def _pairs(text: str):
    """(section, name, value) of each ``name = value`` line, as importlib.metadata's
    Sectioned parser reads them."""
    section = None
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section is not None:
            name, _, value = line.partition("=")
            yield section, name.strip(), value.strip()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None


def _read_headers(path: str) -> dict[str, str]:
    """The first value of each header of the distribution's METADATA (PKG-INFO for an
    egg-info), keys lower-cased, as the email parser reads them."""
    text = None
    for name in _META_FILES:
        text = _read(os.path.join(path, name))
        if text:
            break
    if not text and os.path.isfile(path):  # an egg-info that is a file
        text = _read(path)
    headers: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            break
        if line[0] in " \t" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), value.lstrip(" \t").rstrip("\r\n"))
    return headers
