"""Face detection recall on the 90 labelled faces of the ExpW photos ($FERKIT_DATASETS/photos/expw).

    .venv/bin/python benchmarks/detection_recall.py [--detector mtcnn|haar] [--min-iou 0.4] [--show-missed]
        [--threads N]

Prints, per detector: labelled faces found (one-to-one matching at IoU >= min-iou) three ways:
  boxes    the detector's own boxes;
  squares  each box made square (side max(w, h), same centre): ExpW labels are squares about as
           tall as an MTCNN box and 1.5 times as wide, so a tall, narrow box overlaps its label
           less than the face warrants;
  crops    the squares with margin 0.2 (the regions ferkit classified before the landmark framing);
then the number of detections (extra ones are not errors: the photos hold unlabelled faces), and
the mean and median ms per image (the first image, which pays one-off start-up costs, is left out).
A second line compares label and box shapes: over the labelled faces that some detection overlaps
at all, the median of label width / box width and label height / box height for the best-overlapping
box. --show-missed lists the faces not found on raw boxes with their best IoU, raw and squared.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ferkit.data.images import load_image  # noqa: E402
from ferkit.errors import FerkitError  # noqa: E402
from ferkit.faces import box_iou, create_detector, list_detectors, match_faces  # noqa: E402

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def load_annotations(expw_dir: Path) -> dict[str, np.ndarray]:
    """Labelled face boxes (left, top, right, bottom) per image name."""
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    with open(expw_dir / "annotations.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            boxes[row["image"]].append([float(row[k]) for k in ("left", "top", "right", "bottom")])
    return {name: np.array(b) for name, b in boxes.items()}


def evaluate(detector_name: str, expw_dir: Path, min_iou: float, show_missed: bool) -> None:
    detector = create_detector(detector_name)
    found, square_found, crop_found, detections, times, missed, ratios = 0, 0, 0, 0, [], [], []
    truth = load_annotations(expw_dir)
    for name, boxes in sorted(truth.items()):
        image = load_image(expw_dir / name)
        start = time.perf_counter()
        faces = detector.detect(image)
        times.append(time.perf_counter() - start)
        hit = match_faces(boxes, faces, min_iou)
        found += int(hit.sum())
        square_found += int(match_faces(boxes, [f.square() for f in faces], min_iou).sum())
        crop_found += int(match_faces(boxes, [f.square(0.2) for f in faces], min_iou).sum())
        detections += len(faces)
        if faces:
            iou = box_iou(boxes, np.array([f.box for f in faces]))
            square_iou = box_iou(boxes, np.array([f.square().box for f in faces]))
        else:
            iou = square_iou = np.zeros((len(boxes), 1))
        for i, label in enumerate(boxes):
            best = int(iou[i].argmax())
            if iou[i, best] > 0:
                x1, y1, x2, y2 = faces[best].box
                ratios.append(((label[2] - label[0]) / (x2 - x1), (label[3] - label[1]) / (y2 - y1)))
            if not hit[i]:
                missed.append(f"{name} {label.astype(int).tolist()}  best IoU: box {iou[i].max():.2f}, "
                              f"square {square_iou[i].max():.2f}")
    total = sum(len(b) for b in truth.values())
    ms = 1000 * np.array(times[1:] or times)
    print(
        f"{detector_name:6s} recall@IoU>={min_iou}: boxes {found}/{total} = {found / total:.3f}, "
        f"squares {square_found}/{total} = {square_found / total:.3f}, "
        f"crops {crop_found}/{total} = {crop_found / total:.3f}   detections: {detections}   "
        f"ms/image: mean {ms.mean():.0f}, median {np.median(ms):.0f}"
    )
    width, height = np.median(np.array(ratios), axis=0) if ratios else (float("nan"), float("nan"))
    print(f"       {len(ratios)}/{total} labelled faces overlapped by a detection; label/box median "
          f"width {width:.2f}, height {height:.2f}")
    for line in missed if show_missed else []:
        print(f"       missed {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", choices=list_detectors(), action="append", help="default: all")
    parser.add_argument("--photos", type=Path, default=DATASETS / "photos")
    parser.add_argument("--min-iou", type=float, default=0.4)
    parser.add_argument("--show-missed", action="store_true", help="list the labelled faces not found")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.threads))
    for name in args.detector or list_detectors():
        try:
            evaluate(name, args.photos / "expw", args.min_iou, args.show_missed)
        except FerkitError as exc:
            print(f"{name:6s} unavailable: {exc}")


if __name__ == "__main__":
    main()
