"""seed_cnn training speed: ferkit against the seeds' Keras + ImageDataGenerator pipeline, in one run.

    .venv/bin/python benchmarks/train_vs_keras.py [--quick] [--images 3200] [--rounds 3] [--compile]

Both sides train the seeds' network (ferkit's `seed_cnn`; its Keras twin in `keras_seed_cnn.py`, whose
parameter count is checked against it) with Adam, cross-entropy, batch 64 and the augmentation of ferkit's
default (seed) recipe: rotation, width/height shift, shear, zoom, horizontal flip. The images are the same
few thousand 48×48 gray FER2013 Training faces. ferkit's side is a real `Trainer.train_one_epoch` over
them (augmentation, forward, backward, Adam); Keras' side is `model.fit(datagen.flow(x, y,
batch_size=64))` in the peers' environment (`peers.py`), in a subprocess, under each of its settings
(float32 or mixed_bfloat16; 1 or 2 data-loading workers), so that its best is the one compared; its
mixed_bfloat16 settings only where the CPU runs bf16 natively, as ferkit's own precision choice. ferkit's
epochs keep freed memory in the heap (`ferkit.training.heap`); a second Keras process does the same for
its float32 setting with two workers (`--no-keras-heap` leaves it out; not counted as Keras' best, since
it is not a Keras setting, but it helps any pipeline whose activations outgrow glibc's mmap threshold).
Rounds alternate between the pipelines; each pipeline's figure is the median over rounds, timed from the
end of a window's first batch to the end of its last, after warm-up.

`ferkit (before)` is ferkit's step as it was before the step's speed-ups: the notebook's layer order
(ReLU before max-pooling) and PyTorch's per-parameter Adam loop (freed memory kept, as ferkit's now: the
allocator's setting is process-wide; `freed_memory.py` measures it in separate processes). `--compile`
adds ferkit under `torch.compile` (its compile time is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from machine import cpu_line
from peers import peers_python_or_reason
from torch import nn

from ferkit.augment import AugmentConfig
from ferkit.config import TrainConfig
from ferkit.data import load_dataset
from ferkit.data.dataset import TRAINING, FaceDataset
from ferkit.models.classifier import cpu_has_bf16
from ferkit.training import Callback, Trainer

BATCH = 64
TARGET = 3.0
KERAS_SCRIPT = Path(__file__).resolve().parent / "keras_seed_cnn.py"
KERAS_SETTINGS = [
    {"name": "float32, 1 worker (the seeds')", "precision": "float32", "workers": 1},
    {"name": "float32, 2 workers", "precision": "float32", "workers": 2},
    {"name": "mixed_bfloat16, 1 worker", "precision": "mixed_bfloat16", "workers": 1},
    {"name": "mixed_bfloat16, 2 workers", "precision": "mixed_bfloat16", "workers": 2},
]
KERAS_HEAP_SETTING = {"name": "float32, 2 workers, freed memory kept as ferkit keeps it",
                      "precision": "float32", "workers": 2}


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def training_faces(data: str, count: int) -> FaceDataset:
    """`count` FER2013 Training faces, drawn with a fixed seed."""
    faces = load_dataset(data)
    training = np.flatnonzero(faces.usage == TRAINING)
    chosen = np.random.default_rng(0).choice(training, size=count, replace=False)
    return faces.subset(np.sort(chosen))


# ---------------------------------------------------------------------------------------------- ferkit


class StepClock(Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        self.ends.append(time.perf_counter())


def notebook_order(model: nn.Sequential) -> nn.Sequential:
    """seed_cnn with the ReLU of each conv block before its max-pooling, as ferkit had it."""
    layers = list(model)
    for relu in (3, 7):
        layers[relu - 1], layers[relu] = layers[relu], layers[relu - 1]
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def ferkit_trainer(variant: str, faces: FaceDataset, cfg: TrainConfig) -> Trainer:
    clock = StepClock()
    trainer = Trainer(cfg, faces, faces.subset(slice(0, BATCH)), callbacks=[clock], progress=False)
    if variant == "ferkit (before)":
        trainer.model = trainer.eval_model = notebook_order(trainer.model)
        trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=cfg.lr)
    elif variant == "ferkit, torch.compile":
        trainer.model = torch.compile(trainer.model)
    return trainer


def warm_up(trainer: Trainer, steps: int = 3) -> float:
    """Seconds the first `steps` steps took (compilation included)."""
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(trainer.train_images[:BATCH], trainer.train_targets[:BATCH])
    return time.perf_counter() - start


def ferkit_window(trainer: Trainer, epoch: int) -> float:
    """Images/s of one epoch over the faces, from the end of its first batch to the end of its last."""
    clock = trainer.callbacks[0]
    clock.ends = []
    trainer.train_one_epoch(epoch)
    ends = clock.ends
    return BATCH * (len(ends) - 1) / (ends[-1] - ends[0])


# ---------------------------------------------------------------------------------------------- Keras


class KerasPipeline:
    """The Keras side in the peers' environment: one subprocess, asked for one timed window at a time."""

    def __init__(self, python: Path, faces: FaceDataset, augment: AugmentConfig, settings: list[dict],
                 workdir: Path, keep_freed_memory: bool = False) -> None:
        data = workdir / "faces.npz"
        np.savez(data, x=faces.images, y=faces.labels)
        setup = {"data": str(data), "num_classes": faces.num_classes, "batch": BATCH, "warmup_steps": 3,
                 "augment": keras_ranges(augment), "settings": settings, "threads": torch.get_num_threads(),
                 "keep_freed_memory": keep_freed_memory}
        self.stderr = (workdir / f"keras-{len(list(workdir.glob('keras-*')))}.log").open("w")
        self.process = subprocess.Popen([str(python), str(KERAS_SCRIPT), json.dumps(setup)], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.info = self._reply()

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            log = Path(self.stderr.name).read_text().strip().splitlines()
            raise RuntimeError(f"the Keras process ended (exit {self.process.returncode}): "
                               + (log[-1] if log else "no message"))
        return json.loads(line)

    def window(self, setting: str, steps: int) -> float:
        self.process.stdin.write(json.dumps({"setting": setting, "steps": steps}) + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        return reply["images"] / reply["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()
        self.stderr.close()


def keras_ranges(augment: AugmentConfig) -> dict:
    """ImageDataGenerator's arguments for ferkit's ranges (Keras takes symmetric ranges only). Keras draws
    its zoom per axis, ferkit one for both: the same range, a different shape."""
    bounds = {name: augment.bounds(name) for name in ("rotation", "width_shift", "height_shift", "shear")}
    lo, hi = augment.zoom_range()
    bounds["zoom"] = (lo - 1.0, hi - 1.0)
    for name, (lo, hi) in bounds.items():
        if not np.isclose(-lo, hi):
            raise SystemExit(f"augment {name} ({lo}, {hi}) is not symmetric; "
                             "ImageDataGenerator cannot take it")
    return {**{name: hi for name, (_, hi) in bounds.items()}, "horizontal_flip": augment.horizontal_flip}


# ---------------------------------------------------------------------------------------------- report


def start_keras(faces: FaceDataset, augment: AugmentConfig, settings: list[dict], workdir: Path,
                keep_freed_memory: bool = False) -> tuple[KerasPipeline | None, str]:
    python, reason = peers_python_or_reason()
    if python is None:
        return None, reason
    try:
        return KerasPipeline(python, faces, augment, settings, workdir, keep_freed_memory), ""
    except RuntimeError as error:
        return None, str(error)


def keras_settings(quick: bool) -> list[dict]:
    """Keras' settings to time: its bf16 ones only where the CPU runs bf16 natively, as ferkit decides."""
    settings = [s for s in KERAS_SETTINGS if cpu_has_bf16() or s["precision"] != "mixed_bfloat16"]
    return settings[::len(settings) - 1] if quick and len(settings) > 2 else settings


def print_header(args: argparse.Namespace, cfg: TrainConfig, trainer: Trainer, keras: KerasPipeline | None,
                 load_before: str) -> None:
    print(f"CPU: {cpu_line()}; load average before: {load_before}")
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, {torch.get_num_interop_threads()} "
          f"inter-op; ferkit precision {trainer.precision}, channels-last")
    if keras is not None:
        info = keras.info
        print(f"TensorFlow {info['tensorflow']} / Keras {info['keras']}: {info['intra_op_threads']} "
              f"intra-op, {info['inter_op_threads']} inter-op threads; XLA as Keras decides "
              "(jit_compile='auto')")
        torch_params = sum(p.numel() for p in trainer.model.parameters())
        same = "same" if info["params"]["trainable"] == torch_params else "DIFFERENT"
        print(f"parameters: ferkit seed_cnn {torch_params:,}, Keras {info['params']['trainable']:,} "
              f"trainable ({same})")
    print(f"{len(trainer.train_images)} FER2013 Training faces, batch {BATCH}, {args.rounds} rounds; "
          f"augmentation {asdict(cfg.augment)}")


def print_table(results: dict[str, list[float]], keras_names: list[str], notes: dict[str, str]) -> None:
    """The table, and ferkit's ratio to Keras' best setting of its own (the target) and to the Keras process
    that keeps freed memory as ferkit does."""
    own = [n for n in keras_names if n != keras_name(KERAS_HEAP_SETTING)]
    keras_best = max((statistics.median(results[n]) for n in own), default=None)
    print("\n| pipeline | images/s (median) | rounds | vs best Keras |")
    print("|---|---|---|---|")
    for name, rates in results.items():
        rate = statistics.median(rates)
        ratio = f"{rate / keras_best:.2f}×" if keras_best else "–"
        label = f"{name} {notes[name]}".strip()
        print(f"| {label} | {rate:,.0f} | {', '.join(f'{r:.0f}' for r in rates)} | {ratio} |")
    ferkit_rate = statistics.median(results["ferkit"])
    if keras_best:
        verdict = "met" if ferkit_rate >= TARGET * keras_best else "MISSED"
        print(f"\nferkit / best Keras: {ferkit_rate / keras_best:.2f}× (target ≥ {TARGET:g}×: {verdict})")
    if keras_name(KERAS_HEAP_SETTING) in results:
        rate = statistics.median(results[keras_name(KERAS_HEAP_SETTING)])
        print(f"ferkit / Keras keeping freed memory as ferkit does: {ferkit_rate / rate:.2f}×")


def keras_name(setting: dict) -> str:
    return f"Keras, {setting['name']}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/fer2013")
    parser.add_argument("--images", type=int, default=3200,
                        help="FER2013 Training faces (rounded down to whole batches)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shear", type=float, default=AugmentConfig().shear,
                        help="max shear in degrees, both pipelines (default: ferkit's recipe's)")
    parser.add_argument("--threads", type=int, default=0,
                        help="compute threads of both pipelines (default 0: every core)")
    parser.add_argument("--compile", action="store_true", help="also time ferkit under torch.compile")
    parser.add_argument("--no-keras-heap", action="store_true",
                        help="leave out the Keras process that keeps freed memory as ferkit does")
    parser.add_argument("--quick", action="store_true", help="960 faces, 2 rounds, two Keras settings")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds = 960, 2
    return args


def make_trainers(args: argparse.Namespace, cfg: TrainConfig, faces: FaceDataset) -> tuple[dict, dict]:
    """ferkit's variants, warmed up, and their notes (compilation time)."""
    variants = ["ferkit", "ferkit (before)"] + (["ferkit, torch.compile"] if args.compile else [])
    trainers = {v: ferkit_trainer(v, faces, cfg) for v in variants}
    notes = {v: "" for v in variants}
    for variant, trainer in trainers.items():
        seconds = warm_up(trainer)
        if variant.endswith("compile"):
            notes[variant] = f"(first 3 steps, compilation included: {seconds:.0f} s)"
    return trainers, notes


def time_rounds(trainers: dict[str, Trainer], keras: list[tuple[KerasPipeline, dict]], rounds: int,
                steps: int) -> dict[str, list[float]]:
    """Images/s per round of every ferkit variant and Keras setting, alternating between them."""
    results: dict[str, list[float]] = {name: [] for name in trainers}
    results.update({keras_name(setting): [] for _, setting in keras})
    for epoch in range(rounds):
        for variant, trainer in trainers.items():
            results[variant].append(ferkit_window(trainer, epoch))
        for pipeline, setting in keras:
            results[keras_name(setting)].append(pipeline.window(setting["name"], steps))
    return results


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    load_before = load_average()
    faces = training_faces(args.data, args.images // BATCH * BATCH)
    cfg = TrainConfig(model="seed_cnn", batch_size=BATCH, device="cpu", precision="auto", seed=0,
                      augment=AugmentConfig(shear=args.shear))
    trainers, notes = make_trainers(args, cfg, faces)
    settings = keras_settings(args.quick)
    with tempfile.TemporaryDirectory() as workdir:
        keras, reason = start_keras(faces, cfg.augment, settings, Path(workdir))
        pipelines = [(keras, s) for s in settings] if keras is not None else []
        heap_reason = "left out (--no-keras-heap)" if keras is not None else ""
        if keras is not None and not args.no_keras_heap:
            heap_keras, heap_reason = start_keras(faces, cfg.augment, [KERAS_HEAP_SETTING], Path(workdir),
                                                  keep_freed_memory=True)
            pipelines += [(heap_keras, KERAS_HEAP_SETTING)] if heap_keras is not None else []
        print_header(args, cfg, trainers["ferkit"], keras, load_before)
        if heap_reason:
            print(f"Keras keeping freed memory as ferkit does not measured: {heap_reason}")
        if keras is None:
            print(f"Keras not measured: {reason}")
        if not cpu_has_bf16():
            print("Keras mixed_bfloat16 not measured: this CPU has no native bf16, which it would emulate "
                  "many times slower (ferkit trains in fp32 here too)")
        with trainers["ferkit"].memory():  # across all rounds, as `Trainer.run` holds it across epochs
            results = time_rounds(trainers, pipelines, args.rounds, len(faces) // BATCH)
        for pipeline in {id(p): p for p, _ in pipelines}.values():
            pipeline.close()
    notes.update({keras_name(s): "" for _, s in pipelines})
    print_table(results, [keras_name(s) for _, s in pipelines], notes)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
