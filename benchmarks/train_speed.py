"""Training throughput (images/s) per model and precision on this machine.

    .venv/bin/python benchmarks/train_speed.py [--models fast_fer,seed_cnn] [--batch 64] [--steps 30]

One training step = augmentation + forward + backward + Adam update on a batch of 48×48 gray
faces, exactly as `ferkit train` runs it (channels-last; bf16 autocast for "bf16").
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ferkit.augment import AugmentConfig, Augmenter
from ferkit.models import create_model
from ferkit.models.classifier import cpu_has_bf16

FER2013_TRAINING_IMAGES = 28709


def images_per_second(name: str, precision: str, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(name).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    augment = Augmenter(AugmentConfig(erasing=0.25))
    x, y = torch.randn(batch, 1, 48, 48), torch.randint(0, 7, (batch,))

    def step() -> None:
        xa = augment(x).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(xa).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fast_fer,seed_cnn,seed_dropout_cnn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_bf16()}, "
          f"batch {args.batch}")
    print(f"{'model':18s} {'precision':9s} {'img/s':>8s} {'s/epoch (FER2013 train)':>24s}")
    for name in args.models.split(","):
        for precision in ("fp32", "bf16"):
            rate = images_per_second(name, precision, args.batch, args.steps)
            print(f"{name:18s} {precision:9s} {rate:8.0f} {FER2013_TRAINING_IMAGES / rate:24.1f}", flush=True)


if __name__ == "__main__":
    main()
