"""Seconds and peak memory of one FER2013 training epoch, as a user runs it.

    .venv/bin/python benchmarks/epoch_cost.py                        # fast_fer, all 28,709 Training faces
    .venv/bin/python benchmarks/epoch_cost.py --max-per-class 300    # a small subset (--quick)
    .venv/bin/python benchmarks/epoch_cost.py --models fast_fer,seed_cnn

Runs `ferkit train --epochs 1` in a child process per model (default recipe otherwise: batch 64,
`--precision auto`) and reports the epoch's training seconds (`train_seconds` in history.json), the
seconds with the PublicTest pass, the wall time of the whole command (loading the data, the report and the
plots included) and the child's peak resident memory (`ru_maxrss`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_line  # noqa: E402
from train_vs_keras import load_average  # noqa: E402

DATASETS = Path(os.environ.get("FERKIT_DATASETS", ROOT.parent / "shared" / "datasets"))


def one_epoch(model: str, out: Path, max_per_class: int | None) -> dict:
    command = [sys.executable, "-m", "ferkit", "train", "--data", str(DATASETS / "fer2013"), "--model", model,
               "--epochs", "1", "--no-progress", "--out", str(out)]
    if max_per_class:
        command += ["--max-per-class", str(max_per_class)]
    errors = out.with_suffix(".stderr")  # a file, not a pipe: a chatty child cannot fill it and block
    start = time.perf_counter()
    with errors.open("w") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # wait4: the child's own peak memory
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"epoch_cost: error: {' '.join(command)} failed: {errors.read_text().strip()}")
    epoch = json.loads((out / "history.json").read_text())[-1]
    faces = json.loads((out / "splits.json").read_text())
    return {"model": model, "train": epoch["train_seconds"], "with_val": epoch["seconds"], "wall": wall,
            "peak_mb": usage.ru_maxrss / 1024, "faces": faces}


def split_sizes(splits: dict) -> str:
    return ", ".join(f"{name} {splits[name]['size']:,}" for name in ("train", "val", "test")
                     if name in splits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fast_fer", help="comma-separated registered models")
    parser.add_argument("--max-per-class", type=int, default=None, help="a subset, for a quick run")
    args = parser.parse_args()
    import torch

    print(f"CPU: {cpu_line()}; torch {torch.__version__}; "
          f"load average before: {load_average()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            rows.append(one_epoch(model, Path(tmp) / model, args.max_per_class))
    print(f"faces per split: {split_sizes(rows[0]['faces'])}")
    print()
    print("| model | training s/epoch | with PublicTest pass | whole command, wall | peak memory (RSS) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['train']:.1f} | {row['with_val']:.1f} | {row['wall']:.1f} s | "
              f"{row['peak_mb']:,.0f} MB |")
    print()
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
