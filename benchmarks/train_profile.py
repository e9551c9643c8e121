"""Where a seed_cnn training step spends its time: `torch.profiler` over `Trainer.train_step`.

    .venv/bin/python benchmarks/train_profile.py [--threads 1] [--steps 10] [--before] [--rows 25]

The step is `ferkit train`'s (augmentation of ferkit's default recipe, forward, backward, Adam; bf16 autocast
where the CPU runs it natively) on a batch of 64 random 48×48 faces. The table groups operators by input
shape, so each layer's share shows; `--before` profiles the step as it was before the training speed-ups
(see `train_vs_keras.py`). One thread by default: on a shared machine a single thread's profile is the
least disturbed by other jobs.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch.profiler import ProfilerActivity, profile
from train_speed import random_faces
from train_vs_keras import BATCH, ferkit_trainer

from ferkit.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--before", action="store_true", help="the step before the training speed-ups")
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(model="seed_cnn", batch_size=BATCH, device="cpu", precision="auto", seed=0)
    trainer = ferkit_trainer("ferkit (before)" if args.before else "ferkit", random_faces(BATCH), cfg)
    images, labels = trainer.train_images, trainer.train_labels
    with trainer.memory():  # as `Trainer.run` holds it across epochs
        for _ in range(5):
            trainer.train_step(images, labels)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(args.steps):
                trainer.train_step(images, labels)
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total",
                                                             row_limit=args.rows, max_name_column_width=40))
    total_ms = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1000 / args.steps
    print(f"{'before' if args.before else 'now'}: {total_ms:.1f} ms CPU per step, {args.threads} thread(s), "
          f"precision {trainer.precision}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
