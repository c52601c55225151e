"""benchmarks/model_alone.py for its tests: the script loaded as a module, where it runs from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "model_alone.py"


def load_model_alone():
    """The benchmark script as a module (it is not part of the package), freshly executed."""
    spec = importlib.util.spec_from_file_location("model_alone", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
