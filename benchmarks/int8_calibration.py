"""How the int8 twin's calibration sets the share of faces the engine re-checks in fp32.

    .venv/bin/python benchmarks/int8_calibration.py [--model default|wild] [--faces 1024,4096]
                                                    [--percentiles 99.9,99.99,99.999] [--quick]

For each setting (how many FER2013 Training faces calibrate the activation ranges, and the percentile at
which those ranges clip), a twin of the bundled model is built in memory as `ferkit export --int8` builds it
(`build_int8`): the re-check margin is chosen on PublicTest (the smallest that keeps 99.6 % of fp32's labels),
then PrivateTest reports what the engine would do with it: the share of faces re-checked (each costs a whole
fp32 run, the largest cost at batch 1 after the graph itself) and the labels kept, int8 alone and with the
re-check. The shipped settings are marked. Nothing is written; the bundled twin is not changed.
`--quick`: 500 faces of each test split, the previous twin's setting (1,024 faces, 99.99) and the shipped one.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from machine import cpu_line

from ferkit.data import load_dataset
from ferkit.models.files import ModelInfo, bundled_model_path
from ferkit.models.int8 import (
    CALIBRATION_FACES,
    CALIBRATION_PERCENTILE,
    build_int8,
    calibration_splits,
    choose_margin,
    sample_faces,
    top_two_gap,
)
from ferkit.models.onnx import OnnxClassifier

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def numbers(text: str, kind: type) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", choices=("default", "wild"))
    parser.add_argument("--faces", type=lambda t: numbers(t, int), default=[1024, CALIBRATION_FACES])
    parser.add_argument("--percentiles", type=lambda t: numbers(t, float), default=[99.9, 99.99, 99.999])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if any(f < 1 for f in args.faces) or any(not 0 < p <= 100 for p in args.percentiles):
        parser.error("--faces must be positive counts and --percentiles in (0, 100]")
    return args


def setting_row(weights: Path, info: ModelInfo, train: np.ndarray, val: tuple, test: tuple, faces: int,
                percentile: float) -> str:
    """One table row: the twin built with these settings, judged on PublicTest (`val`) and PrivateTest."""
    start = time.perf_counter()
    twin = OnnxClassifier(build_int8(weights, sample_faces(train, faces), "FER2013 Training",
                                     percentile=percentile), info)
    (val_crops, val_exact), (test_crops, test_exact) = val, test
    val_probs, test_probs = twin.predict_proba(val_crops), twin.predict_proba(test_crops)
    margin, kept = choose_margin(val_probs, val_exact)
    val_rechecked = (top_two_gap(val_probs) < margin).mean()
    near_tie = top_two_gap(test_probs) < margin
    alone = test_probs.argmax(1) == test_exact  # a re-checked face gets fp32's label
    shipped = " (shipped)" if (faces, percentile) == (CALIBRATION_FACES, CALIBRATION_PERCENTILE) else ""
    return (f"| {faces:,} | {percentile:g}{shipped} | {margin:g} | {val_rechecked:.2%} | {kept:.2%} "
            f"| {alone.mean():.2%} | {near_tie.mean():.2%} | {(alone | near_tie).mean():.2%} "
            f"| {time.perf_counter() - start:.0f} s |")


def main() -> None:
    args = parse_args()
    weights = bundled_model_path(args.model)
    train, _, _ = calibration_splits(DATASETS / "fer2013")
    data = load_dataset(DATASETS / "fer2013")
    limit = 500 if args.quick else None
    exact = OnnxClassifier.load(weights)
    splits = []
    for usage in ("PublicTest", "PrivateTest"):
        crops = data.where_usage(usage).images[:limit]
        splits.append((crops, exact.predict_proba(crops).argmax(1)))
    settings = [(f, p) for f in args.faces for p in args.percentiles]
    if args.quick:
        # the previous twin's setting beside the shipped one
        settings = [(1024, 99.99), (CALIBRATION_FACES, CALIBRATION_PERCENTILE)]
    print(f"{cpu_line()}; model {args.model}; {len(splits[0][0]):,} PublicTest and {len(splits[1][0]):,} "
          "PrivateTest faces\n")
    print("| calibration faces | percentile | margin (chosen on PublicTest) | PublicTest re-checked "
          "| PublicTest same label | PrivateTest same label, int8 alone | PrivateTest re-checked "
          "| PrivateTest same label, with the re-check | build and score |")
    print("|---|---|---|---|---|---|---|---|---|")
    for faces, percentile in settings:
        print(setting_row(weights, exact.info, train, splits[0], splits[1], faces, percentile), flush=True)


if __name__ == "__main__":
    main()
