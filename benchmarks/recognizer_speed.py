"""Speed of the bundled model through ferkit's public API, and of the whole photo → faces pipeline.

    .venv/bin/python benchmarks/recognizer_speed.py [--seconds 4]

Classifier throughput is faces/s on uint8 48×48 crops (normalisation included) at batch 1 and 256,
for each engine: PyTorch fp32, PyTorch bf16 autocast + channels-last, ONNX Runtime (fp32).
The pipeline line is the time for `recognizer(photo)` on a photo (MTCNN + crop + classify).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from ferkit.data import load_dataset
from ferkit.models.classifier import Classifier
from ferkit.models.files import bundled_model_path
from ferkit.models.onnx import OnnxClassifier
from ferkit.predict import Recognizer

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def best_rate(fn, items: int, seconds: float, windows: int = 5) -> float:
    fn(), fn()
    best = 0.0
    for _ in range(windows):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / windows:
            fn()
            n += items
        best = max(best, n / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    crops = load_dataset(DATASETS / "fer2013").images[:256]
    path = bundled_model_path()
    engines = {"torch fp32": Classifier.load(path, device="cpu", precision="fp32"),
               "torch bf16": Classifier.load(path, device="cpu", precision="bf16"),
               "onnxruntime": OnnxClassifier.load(path)}
    print(f"bundled model {path.name}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'engine':14s} {'batch 1':>10s} {'batch 256':>10s}   faces/s")
    for name, engine in engines.items():
        one = best_rate(lambda e=engine: e.predict_proba(crops[:1]), 1, args.seconds)
        many = best_rate(lambda e=engine: e.predict_proba(crops, batch_size=256), 256, args.seconds)
        print(f"{name:14s} {one:10,.0f} {many:10,.0f}")
    reference = engines["torch fp32"].predict_proba(crops)
    for name in ("torch bf16", "onnxruntime"):
        probs = engines[name].predict_proba(crops)
        agree = (probs.argmax(1) == reference.argmax(1)).mean()
        print(f"{name} vs fp32: max |Δp| {np.abs(probs - reference).max():.2e}, same label {agree:.1%}")
    recognizer = Recognizer()
    for photo in ("angry_man.jpg", "crying_woman.jpg"):
        image = str(DATASETS / "photos" / photo)
        recognizer(image)
        start = time.perf_counter()
        for _ in range(5):
            faces = recognizer(image).faces
        print(f"recognizer({photo}): {(time.perf_counter() - start) / 5 * 1000:.0f} ms, "
              f"{len(faces)} face(s): {', '.join(f.label for f in faces)}")


if __name__ == "__main__":
    main()
