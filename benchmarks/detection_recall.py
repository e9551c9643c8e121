"""Face detection recall on labelled faces: the 90 of the ExpW photos and the 1,388 of expw-dev.

    .venv/bin/python benchmarks/detection_recall.py [--data expw expw-dev] [--detector mtcnn ...]
        [--min-iou 0.4] [--show-missed] [--threads N] [--quick]

Every detector runs on the same image one after the other (interleaved), so a change in the machine's
load during the run slows them all alike and their speeds compare. Per dataset and detector, the labelled
faces found (one-to-one matching at IoU >= min-iou) three ways:
  boxes    the detector's own boxes;
  squares  each box made square (side max(w, h), same centre): ExpW labels are squares about as
           tall as an MTCNN box and 1.5 times as wide, so a tall, narrow box overlaps its label
           less than the face warrants;
  crops    the squares with margin 0.2 (the regions ferkit classified before the landmark framing);
then the number of detections (extra ones are not errors: the photos hold unlabelled faces), whether
the detector gives the five landmarks the crop framing (`ferkit.faces.Framing`) places, and the mean and
median ms per image (the first image, which pays one-off start-up costs, is left out). The output is a
Markdown table. --show-missed lists, per detector, the faces not found with squares and their best IoU.
--quick uses the first 10 ExpW photos and 150 expw-dev faces.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_line  # noqa: E402

from ferkit.data.images import load_image  # noqa: E402
from ferkit.errors import FerkitError  # noqa: E402
from ferkit.faces import Detector, box_iou, create_detector, list_detectors, match_faces  # noqa: E402

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
# Labelled-box CSVs: where each lies, and the column naming the image (relative to the CSV's folder).
SOURCES = {"expw": ("photos/expw/annotations.csv", "image"), "expw-dev": ("expw-dev/annotations.csv", "file")}
QUICK_IMAGES = {"expw": 10, "expw-dev": 150}


def load_annotations(csv_path: Path, image_column: str) -> dict[Path, np.ndarray]:
    """Labelled face boxes (left, top, right, bottom) per image path."""
    boxes: dict[Path, list[list[float]]] = defaultdict(list)
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            boxes[csv_path.parent / row[image_column]].append(
                [float(row[k]) for k in ("left", "top", "right", "bottom")])
    return {path: np.array(b) for path, b in sorted(boxes.items())}


@dataclass
class Tally:
    """One detector's counts on one dataset."""

    found: int = 0
    squares: int = 0
    crops: int = 0
    detections: int = 0
    with_landmarks: int = 0
    seconds: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def add(self, path: Path, truth: np.ndarray, faces: list, seconds: float, min_iou: float) -> None:
        self.seconds.append(seconds)
        self.found += int(match_faces(truth, faces, min_iou).sum())
        square_hit = match_faces(truth, [f.square() for f in faces], min_iou)
        self.squares += int(square_hit.sum())
        self.crops += int(match_faces(truth, [f.square(0.2) for f in faces], min_iou).sum())
        self.detections += len(faces)
        self.with_landmarks += sum(f.landmarks is not None for f in faces)
        squares = np.array([f.square().box for f in faces]).reshape(-1, 4)
        best = box_iou(truth, squares).max(axis=1) if len(faces) else np.zeros(len(truth))
        self.missed += [f"{path.name} {label.astype(int).tolist()} best square IoU {iou:.2f}"
                        for label, iou, hit in zip(truth, best, square_hit) if not hit]

    def ms(self) -> tuple[float, float]:
        ms = 1000 * np.array(self.seconds[1:] or self.seconds)
        return float(ms.mean()), float(np.median(ms))


def run_dataset(detectors: dict[str, Detector], truth: dict[Path, np.ndarray],
                min_iou: float) -> dict[str, Tally]:
    """Every detector on every image, interleaved image by image."""
    tallies = {name: Tally() for name in detectors}
    for path, boxes in truth.items():
        image = load_image(path, mode="rgb")
        for name, detector in detectors.items():
            start = time.perf_counter()
            faces = detector.detect(image)
            tallies[name].add(path, boxes, faces, time.perf_counter() - start, min_iou)
    return tallies


def fraction(count: int, total: int) -> str:
    return f"{count}/{total} = {count / total:.3f}"


def print_table(dataset: str, tallies: dict[str, Tally], total: int, images: int) -> None:
    print(f"\n### {dataset}: {total} labelled faces in {images} images\n")
    print("| detector | landmarks | boxes | squares | crops | detections | ms/image mean / median |")
    print("|---|---|---|---|---|---|---|")
    for name, t in tallies.items():
        marks = "yes" if t.detections and t.with_landmarks == t.detections else (
            "no" if t.detections else "–")
        mean, median = t.ms()
        print(f"| {name} | {marks} | {fraction(t.found, total)} | **{fraction(t.squares, total)}** | "
              f"{fraction(t.crops, total)} | {t.detections} | {mean:.1f} / {median:.1f} |")


def machine_line(threads: int) -> str:
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"CPU: {cpu_line()}, torch threads {threads}; load average {load}"


def build_detectors(names: list[str]) -> dict[str, Detector]:
    """Each named detector; yunet also as OpenCV's `cv2.FaceDetectorYN` runs it (same network, same
    decoding, another engine), so the two engines' speeds compare in one run."""
    detectors = {}
    for name in names:
        try:
            detectors[name] = create_detector(name)
            if name == "yunet":
                detectors["yunet (OpenCV engine)"] = create_detector(name, engine="opencv")
        except FerkitError as exc:
            print(f"{name}: unavailable: {exc}")
    return detectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", choices=list_detectors(), action="append", help="default: all")
    parser.add_argument("--data", choices=list(SOURCES), nargs="+", default=list(SOURCES))
    parser.add_argument("--datasets", type=Path, default=DATASETS, help="the shared datasets folder")
    parser.add_argument("--min-iou", type=float, default=0.4)
    parser.add_argument("--show-missed", action="store_true", help="list the labelled faces not found")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="a few images per dataset (< 1 minute)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.threads))
    print(machine_line(args.threads))
    detectors = build_detectors(args.detector or list_detectors())
    for dataset in args.data:
        relative, column = SOURCES[dataset]
        truth = load_annotations(args.datasets / relative, column)
        truth = dict(list(truth.items())[:QUICK_IMAGES[dataset]]) if args.quick else truth
        tallies = run_dataset(detectors, truth, args.min_iou)
        print_table(dataset, tallies, sum(len(b) for b in truth.values()), len(truth))
        for name, tally in tallies.items() if args.show_missed else ():
            print("\n".join(f"- {name} missed {line}" for line in tally.missed))
    print(f"\nload average at the end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
