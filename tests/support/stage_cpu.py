"""benchmarks/stage_cpu.py for its tests: the benchmark's module (benchmarks/ is not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "stage_cpu.py"


def load_stage_cpu():
    """The module, freshly executed."""
    spec = importlib.util.spec_from_file_location("stage_cpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
