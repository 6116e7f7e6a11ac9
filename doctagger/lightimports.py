"""Import a library without an optional module it would import eagerly but doctagger never
uses through it, to keep every command's start-up short.

- sqlite-utils imports pandas and numpy when they are installed (datasets pulls them in)
  only to map their types to column types: doctagger writes plain values into tables its
  migrations made, and the two cost 0.2-0.4 s of every command that opens the index.
- PyMuPDF 2 imports ``pymupdf.layout`` (and ONNX Runtime) and ``pymupdf4llm`` (and numpy)
  when they are installed: 0.5-0.75 s in every ingest worker, for a layout analyser and
  Markdown export that ingest does not use.

If the optional module is already imported (a program that uses pandas and doctagger), it is
left alone and the library sees it as usual.
"""
from __future__ import annotations

import importlib
import sys


def import_without(name: str, *optional: str):
    """Import module ``name`` while the ``optional`` modules that are not loaded yet look
    absent; a module already loaded is returned as it is."""
    if name in sys.modules:
        return sys.modules[name]
    blocked = [m for m in optional if m not in sys.modules]
    for module in blocked:
        sys.modules[module] = None  # makes `import module` raise ImportError
    try:
        return importlib.import_module(name)
    finally:
        for module in blocked:
            if sys.modules.get(module, 0) is None:
                del sys.modules[module]
