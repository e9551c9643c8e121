"""benchmarks/openvino_engine.py: a model it does not know is one parser error line, before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_an_unknown_model_is_one_error_line():
    result = subprocess.run([sys.executable, "benchmarks/openvino_engine.py", "--model", "default,nope"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith("--model: unknown ['nope']; bundled: default, wild")
    assert result.stdout == ""  # nothing measured, nothing installed
