"""One training epoch with one process and with two (torchrun, gloo) on this CPU, same global batch.

    .venv/bin/python benchmarks/ddp_speed.py                      # 500 faces per class, 3 rounds
    .venv/bin/python benchmarks/ddp_speed.py --quick              # 100 faces per class, 2 rounds
    .venv/bin/python benchmarks/ddp_speed.py --model seed_cnn

Three ways to spend two cores on `ferkit train --epochs 1` (global batch 64, `--precision auto`):
one process with one thread, one process with two threads, and `torchrun --nproc_per_node 2` with one
thread each and batch 32 per process. Rounds take turns (1x1, 1x2, 2x1, then again), so a change in the
machine's load touches them all. Each figure is the epoch's `train_seconds` from history.json (training
steps only: no data loading, no validation pass, no interpreter start-up); the wall time of the whole
command is printed beside it. Compare on a quiet machine: with the cores oversubscribed, OpenMP threads
wait for each other and the figures measure the scheduler.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
TORCHRUN = Path(sys.executable).with_name("torchrun")
SETUPS = {  # name: (launcher, batch per process, threads per process)
    "1 process × 1 thread": ([sys.executable, "-m", "ferkit"], 64, 1),
    "1 process × 2 threads": ([sys.executable, "-m", "ferkit"], 64, 2),
    "2 processes × 1 thread (torchrun, gloo)":
        ([str(TORCHRUN), "--nproc_per_node", "2", "-m", "ferkit"], 32, 1),
}


def one_epoch(setup: str, model: str, max_per_class: int, out: Path) -> tuple[float, float]:
    """(training seconds of the epoch, wall seconds of the command) for one setup."""
    launcher, batch, threads = SETUPS[setup]
    command = launcher + ["train", "--data", str(DATASETS / "fer2013"), "--model", model, "--epochs", "1",
                          "--batch-size", str(batch), "--max-per-class", str(max_per_class),
                          "--threads", str(threads), "--no-progress", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ddp_speed: error: {' '.join(command)} failed: {done.stderr.strip()[-400:]}")
    return json.loads((out / "history.json").read_text())[-1]["train_seconds"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fast_fer")
    parser.add_argument("--max-per-class", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 faces per class, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.max_per_class, args.rounds = 100, 2
    if not TORCHRUN.is_file():
        raise SystemExit(f"ddp_speed: error: no torchrun beside {sys.executable}")
    print(f"CPU: {cpu_line()}; load average before: {load_average()}")
    print(f"{args.model}, FER2013 Training at most {args.max_per_class} faces per class, one epoch, global "
          f"batch 64, {args.rounds} rounds taking turns\n")
    train: dict[str, list[float]] = {name: [] for name in SETUPS}
    wall: dict[str, list[float]] = {name: [] for name in SETUPS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for i, name in enumerate(SETUPS):
                seconds, command_wall = one_epoch(name, args.model, args.max_per_class,
                                                  Path(tmp) / f"r{round_}_{i}")
                train[name].append(seconds)
                wall[name].append(command_wall)
    baseline = statistics.median(train["1 process × 1 thread"])
    print("| setup | training s of the epoch (median) | rounds | vs 1 × 1 | whole command, wall (median) |")
    print("|---|---|---|---|---|")
    for name in SETUPS:
        median = statistics.median(train[name])
        rounds = ", ".join(f"{s:.1f}" for s in train[name])
        print(f"| {name} | {median:.1f} | {rounds} | {baseline / median:.2f}× | "
              f"{statistics.median(wall[name]):.0f} s |")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
