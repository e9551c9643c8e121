"""Import one of the repo's scripts (benchmarks/*.py, scripts/*.py) as a module, to test its parts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """The script at `relative` (from the repo root) as a module named after its file.

    It is registered in sys.modules (dataclasses look their module up there), and sys.path is restored
    afterwards: the scripts put src/ and benchmarks/ on it for their own imports.
    """
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module
