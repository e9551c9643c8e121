"""What each augmentation costs per training batch, and the whole training step with and without them.

    .venv/bin/python benchmarks/augment_cost.py [--batch 64] [--repeats 50] [--steps 20] [--threads N]
        [--recipe FILE]

Part 1 times `Augmenter` alone on a batch of 48×48 gray faces (normalised, as the trainer hands them): the
default augmentation (affine + flip), then each other transform on its own (everything else off), at
probability 1 (the worst case), and mixup / cutmix (`mix_batch`); part 2 times `Trainer.train_step` of
fast_fer (fp32, CPU) with the default augmentation and with the recipe's (default
configs/wild-finetune.yaml). Each row gives wall-clock and CPU milliseconds (the process's CPU time, all
threads): on a shared machine the wall clock counts the waits for a core, CPU time mostly does not; with
--threads 1 it is the work itself. Prints the load average, since the numbers depend on what else runs.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from ferkit.augment import AugmentConfig, Augmenter, everything_off, mix_batch
from ferkit.config import TrainConfig, load_recipe
from ferkit.data.classes import CANONICAL_ORDER
from ferkit.data.dataset import FaceDataset
from ferkit.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
ONE_AT_A_TIME = {
    "affine + flip (the defaults)": None,
    "erasing 1.0": dict(erasing=1.0),
    "aspect 0.2": dict(aspect=0.2),
    "yaw 25": dict(yaw=25.0),
    "low_res 1.0": dict(low_res=1.0),
    "blur 1.0 (sigma ≤ 1.5)": dict(blur=1.0),
    "noise 1.0": dict(noise=1.0),
    "brightness+contrast+gamma": dict(brightness=0.1, contrast=0.2, gamma=0.2),
    "jpeg 1.0 (OpenCV)": dict(jpeg=1.0),
}


def random_faces(n: int) -> FaceDataset:
    rng = np.random.default_rng(0)
    return FaceDataset(images=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
                       labels=rng.integers(0, 7, n), class_names=list(CANONICAL_ORDER[:7]))


def milliseconds(call, repeats: int) -> str:
    """'wall ms  CPU ms' per call, after 3 warm-up calls."""
    for _ in range(3):
        call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        call()
    return (f"{1000 * (time.perf_counter() - wall) / repeats:9.2f} "
            f"{1000 * (time.process_time() - cpu) / repeats:9.2f}")


def augment_costs(batch: int, repeats: int) -> None:
    x = (torch.rand(batch, 1, 48, 48) - 0.5) / 0.25
    generator = torch.Generator().manual_seed(0)
    print(f"{'augmentation (batch ' + str(batch) + '), ms/batch':36s} {'wall':>9s} {'CPU':>9s}")
    for name, options in ONE_AT_A_TIME.items():
        config = AugmentConfig() if options is None else AugmentConfig(**{**everything_off(), **options})
        aug = Augmenter(config)
        cost = milliseconds(lambda aug=aug: aug(x, generator, mean=0.5, std=0.25), repeats)
        print(f"{name:36s} {cost}", flush=True)
    labels = torch.randint(0, 7, (batch,))
    for name, mixup, cutmix in (("mixup 0.2", 0.2, 0.0), ("cutmix 1.0", 0.0, 1.0)):
        cost = milliseconds(lambda m=mixup, c=cutmix: mix_batch(x, labels, 7, m, c, generator), repeats)
        print(f"{name:36s} {cost}", flush=True)


def step_costs(batch: int, steps: int, recipe: Path) -> None:
    faces = random_faces(batch)
    wild = load_recipe(recipe).augment
    print(f"\n{'fast_fer fp32 train_step, ms/step':36s} {'wall':>9s} {'CPU':>9s}")
    for name, augment in (("default augmentation", AugmentConfig()), (f"{recipe.name} augmentation", wild)):
        cfg = TrainConfig(model="fast_fer", batch_size=batch, precision="fp32", device="cpu", augment=augment)
        trainer = Trainer(cfg, faces, faces, progress=False)
        cost = milliseconds(lambda t=trainer: t.train_step(t.train_images, t.train_targets), steps)
        print(f"{name:36s} {cost}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--recipe", type=Path, default=ROOT / "configs/wild-finetune.yaml")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    augment_costs(args.batch, args.repeats)
    step_costs(args.batch, args.steps, args.recipe)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
