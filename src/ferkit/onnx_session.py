"""ONNX Runtime sessions on the CPU, set up alike for every ferkit model: the classifiers and the detector."""

from __future__ import annotations

import os

SPINNING = ("in-run", "never", "always")  # when idle ONNX Runtime threads busy-wait


def cpu_session(model: bytes, threads: int = 0, spinning: str = "in-run"):
    """An `onnxruntime.InferenceSession` of `model` (ONNX bytes) on the CPU with `threads` (0: every core).

    spinning "in-run" (ferkit's choice): idle threads busy-wait between the operators of a run (waking a
    sleeping thread for each of ~20 operators cost a sixth of the batch-1 classifier speed) but go to sleep
    when the run ends: ferkit's sessions share the cores with each other (detector, int8 classifier, its
    fp32 re-check), and ORT's default ("always": spinning on after the run) steals them; "never" sleeps even
    within a run (BENCHMARKS.md, "Classifier speed").
    """
    import onnxruntime as ort

    if spinning not in SPINNING:
        raise ValueError(f"spinning must be one of {', '.join(SPINNING)}, not {spinning!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.log_severity_level = 3
    spin, stop = {"in-run": ("1", "1"), "never": ("0", "0"), "always": ("1", "0")}[spinning]
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.force_spinning_stop", stop)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
