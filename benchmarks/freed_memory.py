"""What keeping freed memory in the heap (`ferkit.training.heap`) gives a training epoch, in fresh processes.

    .venv/bin/python benchmarks/freed_memory.py [--models seed_cnn,fast_fer] [--images 1920] [--rounds 3]

glibc's settings are process-wide and cannot be put back exactly once changed, so each timing runs in a
process of its own: one `Trainer.train_one_epoch` warm-up and one timed epoch over FER2013 Training faces
(batch 64, ferkit's default augmentation, every core), both inside `Trainer.memory()` as `Trainer.run`
holds it, with `Trainer.keep_freed_memory` on (ferkit's default) or off (glibc's own handling). Processes
alternate between the two; the figures are medians over rounds, with the minor page faults per step of
the timed epoch and the process's peak resident memory (data loading included).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

import torch
from machine import cpu_line
from train_vs_keras import BATCH, StepClock, training_faces

from ferkit.config import TrainConfig
from ferkit.training import Trainer


def one_epoch(model: str, images: int, data: str, keep: bool) -> dict:
    """images/s and page faults per step of one timed epoch, after a warm-up epoch."""
    torch.set_num_threads(os.cpu_count() or 1)
    faces = training_faces(data, images // BATCH * BATCH)
    cfg = TrainConfig(model=model, batch_size=BATCH, device="cpu", precision="auto", seed=0)
    clock = StepClock()
    trainer = Trainer(cfg, faces, faces.subset(slice(0, BATCH)), callbacks=[clock], progress=False)
    trainer.keep_freed_memory = keep
    with trainer.memory():  # across both epochs, as `Trainer.run` holds it
        trainer.train_one_epoch(0)
        clock.ends = []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        trainer.train_one_epoch(1)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    steps = len(clock.ends)
    return {"images_per_s": BATCH * (steps - 1) / (clock.ends[-1] - clock.ends[0]),
            "faults_per_step": faults / steps, "precision": trainer.precision,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_child(model: str, images: int, data: str, keep: bool) -> dict:
    command = [sys.executable, __file__, "--child", "keep" if keep else "off", "--models", model,
               "--images", str(images), "--data", data]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="seed_cnn,fast_fer")
    parser.add_argument("--images", type=int, default=1920, help="FER2013 Training faces per epoch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default="../shared/datasets/fer2013")
    parser.add_argument("--child", choices=["keep", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_epoch(args.models, args.images, args.data, args.child == "keep")))
        return
    print(f"CPU: {cpu_line()}; torch {torch.__version__}, {os.cpu_count()} threads; load average before: "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"{args.images // BATCH * BATCH} FER2013 Training faces per epoch, batch {BATCH}, "
          f"{args.rounds} rounds, one process per timing\n")
    print("| model | freed memory | images/s (median) | rounds | page faults per step | kept / returned "
          "| peak memory (RSS, median) |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        runs = {True: [], False: []}
        for _ in range(args.rounds):
            for keep in (False, True):
                runs[keep].append(in_child(model, args.images, args.data, keep))
        medians = {keep: statistics.median(r["images_per_s"] for r in rs) for keep, rs in runs.items()}
        for keep in (False, True):
            rates = ", ".join(f"{r['images_per_s']:.0f}" for r in runs[keep])
            faults = statistics.median(r["faults_per_step"] for r in runs[keep])
            ratio = f"{medians[True] / medians[False]:.2f}×" if keep else ""
            label = "kept (ferkit)" if keep else "returned (glibc)"
            peak = statistics.median(r["peak_mb"] for r in runs[keep])
            print(f"| {model} ({runs[keep][0]['precision']}) | {label} | {medians[keep]:.0f} | {rates} "
                  f"| {faults:,.0f} | {ratio} | {peak:,.0f} MB |")
    print("\nload average after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
