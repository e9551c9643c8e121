"""Where the face sits in a FER2013 frame, against where it sits in ferkit's crops of real photos.

    .venv/bin/python benchmarks/face_framing.py [--fer-images 2000] [--expw-faces 400] [--seed 0]

FER2013: random Training images are upscaled 4× (bicubic) and padded by one frame on each side (edge
pixels repeated), MTCNN runs on them, and the five landmarks of the face nearest the centre are mapped
back to the 48×48 frame. Real photos: MTCNN runs on expw-dev photos, the detection matching each
labelled face (squared box IoU ≥ 0.4) is kept, and its landmarks are mapped into the frame of the crop
that a framing cuts. For each the script prints the median landmark positions (fractions of the frame:
x right, y down), the eye distance and the eye-to-mouth distance, so the two framings can be compared.

The FER2013 medians are the template that `ferkit.faces.framing` aligns real faces to; this is the
command that measured them.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ferkit.data.images import load_image  # noqa: E402
from ferkit.faces import box_iou, create_detector  # noqa: E402
from ferkit.faces.detector import Detection  # noqa: E402

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
NAMES = ("left eye", "right eye", "nose", "mouth left", "mouth right")
UPSCALE, PAD = 4, 1.0  # FER2013 frames are 48 px: MTCNN sees them at 192 px with a frame of context


def fer_landmarks(paths: list[Path], detector) -> tuple[np.ndarray, np.ndarray]:
    """N×5×2 landmarks and N×4 squared boxes in fractions of the 48×48 frame, where a face was found."""
    out, boxes = [], []
    for path in paths:
        gray = load_image(path, mode="gray")
        size = gray.shape[0]
        big = cv2.resize(gray, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
        pad = int(PAD * big.shape[0])
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        faces = [f for f in detector.detect(np.stack([big] * 3, -1)) if f.landmarks is not None]
        if not faces:
            continue
        centre = np.array(big.shape[::-1]) / 2
        face = min(faces, key=lambda f: np.linalg.norm(np.reshape(f.box, (2, 2)).mean(0) - centre))
        out.append((face.landmarks - pad) / UPSCALE / size)
        boxes.append((np.array(face.square().box) - pad) / UPSCALE / size)
    return np.array(out), np.array(boxes)


def expw_detections(limit: int, seed: int, detector) -> list[tuple[Detection, tuple]]:
    """(matched MTCNN detection, labelled box) for up to `limit` random expw-dev faces."""
    root = DATASETS / "expw-dev"
    with open(root / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))[:limit]]
    pairs = []
    for row in rows:
        label = tuple(float(row[k]) for k in ("left", "top", "right", "bottom"))
        faces = [f for f in detector.detect(root / row["file"]) if f.landmarks is not None]
        if not faces:
            continue
        iou = box_iou(np.array([f.square().box for f in faces]), np.array([label]))[:, 0]
        if iou.max() >= 0.4:
            pairs.append((faces[int(iou.argmax())], label))
    return pairs


def in_box_frame(landmarks: np.ndarray, box: tuple) -> np.ndarray:
    x1, y1, x2, y2 = box
    return (landmarks - (x1, y1)) / (x2 - x1)


def describe(title: str, marks: np.ndarray) -> None:
    eyes, mouth = marks[:, :2].mean(1), marks[:, 3:].mean(1)
    eye_dist = np.linalg.norm(marks[:, 1] - marks[:, 0], axis=1)
    eye_mouth = np.linalg.norm(mouth - eyes, axis=1)
    med = np.median(marks, 0)
    print(f"\n{title}: {len(marks)} faces; medians as fractions of the frame (x, y)")
    for name, (x, y) in zip(NAMES, med):
        print(f"  {name:12s} ({x:.3f}, {y:.3f})")
    print(f"  eye centre   ({np.median(eyes[:, 0]):.3f}, {np.median(eyes[:, 1]):.3f})   "
          f"mouth centre ({np.median(mouth[:, 0]):.3f}, {np.median(mouth[:, 1]):.3f})")
    q = np.percentile(eye_mouth, [25, 50, 75])
    print(f"  eye distance {np.median(eye_dist):.3f}   eye-to-mouth {q[1]:.3f} "
          f"(quartiles {q[0]:.3f}–{q[2]:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-images", type=int, default=2000)
    parser.add_argument("--expw-faces", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    detector = create_detector("mtcnn")
    train = sorted((DATASETS / "fer2013" / "train").glob("*/*.jpg"))
    picked = [train[i] for i in np.random.default_rng(args.seed).permutation(len(train))[:args.fer_images]]
    fer, boxes = fer_landmarks(picked, detector)
    print(f"FER2013 Training: MTCNN found a face in {len(fer)} of {len(picked)} upscaled frames")
    describe("FER2013 48×48 frame", fer)
    side = np.median(boxes[:, 2] - boxes[:, 0])
    centre = np.median((boxes[:, :2] + boxes[:, 2:]) / 2, 0)
    print(f"  squared MTCNN box: side {side:.3f} of the frame, centre ({centre[0]:.3f}, {centre[1]:.3f}); "
          f"the box margin that gives the FER2013 frame: {1 / side - 1:+.3f}")
    pairs = expw_detections(args.expw_faces, args.seed, detector) if args.expw_faces else []
    if not pairs:
        return
    for margin in (0.2, 0.0):
        marks = np.array([in_box_frame(d.landmarks, d.square(margin).box) for d, _ in pairs])
        describe(f"expw-dev, crop of the MTCNN box squared with margin {margin}", marks)
    labelled = np.array([in_box_frame(d.landmarks, box) for d, box in pairs])
    describe("expw-dev, the labelled square box", labelled)


if __name__ == "__main__":
    main()
