"""Training throughput (images/s) per model and precision on this machine.

    .venv/bin/python benchmarks/train_speed.py [--models fast_fer,seed_cnn] [--batch 64] [--steps 30]

One training step = `Trainer.train_step`, the step `ferkit train` runs (inside `Trainer.memory()`, as
`ferkit train` runs it): augmentation + forward + backward + Adam update on a batch of random 48×48 gray
faces (channels-last; bf16 autocast for "bf16").
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from ferkit.augment import AugmentConfig
from ferkit.config import TrainConfig
from ferkit.data.classes import CANONICAL_ORDER
from ferkit.data.dataset import FaceDataset
from ferkit.models.classifier import cpu_has_bf16
from ferkit.training import Trainer

FER2013_TRAINING_IMAGES = 28709
CLASSES = CANONICAL_ORDER[:7]  # FER2013's seven


def random_faces(n: int) -> FaceDataset:
    rng = np.random.default_rng(0)
    return FaceDataset(images=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
                       labels=rng.integers(0, len(CLASSES), n), class_names=list(CLASSES))


def images_per_second(name: str, precision: str, batch: int, steps: int) -> float:
    cfg = TrainConfig(model=name, batch_size=batch, precision=precision, device="cpu",
                      augment=AugmentConfig(erasing=0.25))
    faces = random_faces(batch)
    trainer = Trainer(cfg, faces, faces)

    def step() -> None:
        trainer.train_step(trainer.train_images, trainer.train_labels)

    with trainer.memory():  # as `Trainer.run` holds it across epochs
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
