"""Where the face sits in a FER2013 frame, against where it sits in ferkit's crops of real photos.

    .venv/bin/python benchmarks/face_framing.py [--fer-images 1000] [--expw-faces 400] [--seed 0] \
        [--detector D]
    .venv/bin/python benchmarks/face_framing.py --reframe ckplus|fer2013-val|fer2013-test [--model default]
    .venv/bin/python benchmarks/face_framing.py --photos --zoom 0.9 1.1 --own-template [--detector yunet]

FER2013: random Training images are upscaled 4× (bicubic) and padded by one frame on each side (edge
pixels repeated), MTCNN runs on them, and the five landmarks of the face nearest the centre are mapped
back to the 48×48 frame. Real photos: MTCNN runs on expw-dev photos, the detection matching each
labelled face (squared box IoU ≥ 0.4) is kept, and its landmarks are mapped into the frame of the crop
that a framing cuts. For each the script prints the median landmark positions (fractions of the frame:
x right, y down), the eye distance and the eye-to-mouth distance, so the two framings can be compared.

The FER2013 medians are the template that `ferkit.faces.framing` aligns real faces to; this is the
command that measured them.

--detector: whose landmarks are measured (default mtcnn, which measured the template). Detectors place
landmarks differently, so the same framing cuts their faces differently.

--reframe: the crops of a crop dataset (CK+48, FER2013 PublicTest or PrivateTest) shown 4× larger with
context, the face detected and cut again by each framing, then classified: accuracy as the crops come
against accuracy re-framed, on the images where a face was found. It shows how far a dataset's own framing
is from FER2013's.

--photos: the full user path (`Recognizer`, PyTorch fp32) on expw-dev and photos/expw with the landmark
framing zoomed by each `--zoom`, paired against the default framing (McNemar's exact test).

--own-template (with --reframe or --photos): also frame with the template this detector's own landmarks
give on `--fer-images` FER2013 Training frames, measured first, instead of ferkit's (MTCNN's).
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

from ferkit.compare import compare  # noqa: E402
from ferkit.data.images import load_image  # noqa: E402
from ferkit.evaluate_photos import evaluate_boxes  # noqa: E402
from ferkit.faces import Framing, box_iou, create_detector, crop_face  # noqa: E402
from ferkit.faces.detector import Detection  # noqa: E402
from ferkit.faces.framing import landmark_matrix  # noqa: E402
from ferkit.models import load_classifier  # noqa: E402
from ferkit.predict import Recognizer  # noqa: E402

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
NAMES = ("left eye", "right eye", "nose", "mouth left", "mouth right")
UPSCALE, PAD = 4, 1.0  # FER2013 frames are 48 px: MTCNN sees them at 192 px with a frame of context


def upscaled(gray: np.ndarray) -> np.ndarray:
    """The frame 4× larger, padded by one frame on each side with its edge pixels, as RGB."""
    big = cv2.resize(gray, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    pad = int(PAD * big.shape[0])
    return np.stack([cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)] * 3, -1)


class TemplateFraming(Framing):
    """The landmark framing with another template (a detector's own, measured by `fer_landmarks`)."""

    def __init__(self, template: np.ndarray):
        super().__init__()
        object.__setattr__(self, "template", np.asarray(template, np.float64))

    def matrix(self, box, landmarks, size):
        if landmarks is None:
            return super().matrix(box, landmarks, size)
        return landmark_matrix(np.asarray(landmarks, np.float64).reshape(5, 2), size, False,
                               template=self.template)


def crop_dataset(dataset: str):
    from ferkit.data import load_dataset
    from ferkit.data.splits import make_splits

    if dataset == "ckplus":
        return load_dataset(DATASETS / "ckplus" / "CK+48")
    splits = make_splits(load_dataset(DATASETS / "fer2013"))
    return splits.val if dataset == "fer2013-val" else splits.test


def reframe(dataset: str, model: str, detector, extra: dict[str, Framing]) -> None:
    """Accuracy of `model` on a crop dataset as it comes and re-framed (see the module docstring)."""
    data = crop_dataset(dataset)
    classifier = load_classifier(model)
    names = classifier.class_names
    keep = np.array([data.class_names[label] in names for label in data.labels])
    framings = {"as cropped": None, "landmarks": Framing(), "landmarks, aligned": Framing(align=True),
                "box -0.07": Framing("box", -0.07), "box 0.2 (before)": Framing("box", 0.2), **extra}
    crops = {name: [] for name in framings}
    truth = []
    for image, label, kept in zip(data.images, data.labels, keep):
        if not kept:
            continue
        big = upscaled(image)
        faces = detector.detect(big)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.area)
        truth.append(names.index(data.class_names[label]))
        for name, framing in framings.items():
            crops[name].append(image if framing is None else crop_face(big, face, image.shape[0], framing))
    print(f"{dataset}: {detector.name} found a face in {len(truth)} of {int(keep.sum())} images "
          "(classes the model has)")
    for name, stack in crops.items():
        predicted = classifier.predict_proba(np.stack(stack)).argmax(1)
        print(f"  {name:28s} accuracy {np.mean(predicted == np.array(truth)):.4f}")


def photos(model: str, detector, extra: dict[str, Framing]) -> None:
    """The full path on expw-dev and photos/expw with each framing, paired against the default one."""
    for data in (DATASETS / "expw-dev", DATASETS / "photos" / "expw"):
        base = evaluate_boxes(Recognizer(model, detector, backend="torch"), data, progress=False)
        print(f"{data.name}: {len(base.y_true)} labelled faces, full path ({detector.name}); "
              f"default landmark framing {base.accuracy:.2%}")
        for name, framing in extra.items():
            run = evaluate_boxes(Recognizer(model, detector, backend="torch", framing=framing), data,
                                 progress=False)
            paired = compare(run, base)
            print(f"  {name:28s} {run.accuracy:.2%}  only it right {paired.only_a}, only the default "
                  f"{paired.only_b}, McNemar p = {paired.p_value:.2g}")


def fer_landmarks(paths: list[Path], detector) -> tuple[np.ndarray, np.ndarray]:
    """N×5×2 landmarks and N×4 squared boxes in fractions of the 48×48 frame, where a face was found."""
    out, boxes = [], []
    for path in paths:
        gray = load_image(path, mode="gray")
        size = gray.shape[0]
        big = upscaled(gray)
        pad = int(PAD * UPSCALE * size)
        faces = [f for f in detector.detect(big) if f.landmarks is not None]
        if not faces:
            continue
        centre = np.array(big.shape[1::-1]) / 2
        face = min(faces, key=lambda f: np.linalg.norm(np.reshape(f.box, (2, 2)).mean(0) - centre))
        out.append((face.landmarks - pad) / UPSCALE / size)
        boxes.append((np.array(face.square().box) - pad) / UPSCALE / size)
    return np.array(out), np.array(boxes)


def training_frames(count: int, seed: int) -> list[Path]:
    train = sorted((DATASETS / "fer2013" / "train").glob("*/*.jpg"))
    return [train[i] for i in np.random.default_rng(seed).permutation(len(train))[:count]]


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
    parser.add_argument("--fer-images", type=int, default=1000)
    parser.add_argument("--expw-faces", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reframe", choices=("ckplus", "fer2013-val", "fer2013-test"))
    parser.add_argument("--photos", action="store_true")
    parser.add_argument("--zoom", type=float, nargs="*", default=[])
    parser.add_argument("--own-template", action="store_true")
    parser.add_argument("--model", default="default")
    parser.add_argument("--detector", default="mtcnn", help="the detector whose landmarks are measured")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    detector = create_detector(args.detector)
    if args.reframe or args.photos:
        extra = {f"landmarks, zoom {z:g}": Framing(zoom=z) for z in args.zoom}
        if args.own_template:
            own = np.median(fer_landmarks(training_frames(args.fer_images, args.seed), detector)[0], 0)
            print(f"{detector.name}'s own template: {np.round(own, 3).tolist()}")
            extra[f"{detector.name}'s own template"] = TemplateFraming(own)
        if args.reframe:
            reframe(args.reframe, args.model, detector, extra)
        else:
            photos(args.model, detector, extra)
        return
    picked = training_frames(args.fer_images, args.seed)
    fer, boxes = fer_landmarks(picked, detector)
    print(f"FER2013 Training: {detector.name} found a face in {len(fer)} of {len(picked)} upscaled frames")
    describe("FER2013 48×48 frame", fer)
    scale = landmark_matrix(np.median(fer, 0), 1, False)[0, 0]
    print(f"  ferkit's template frames this detector's faces at {scale:.3f}× their size in a FER2013 frame")
    side = np.median(boxes[:, 2] - boxes[:, 0])
    centre = np.median((boxes[:, :2] + boxes[:, 2:]) / 2, 0)
    print(f"  squared {detector.name} box: side {side:.3f} of the frame, "
          f"centre ({centre[0]:.3f}, {centre[1]:.3f}); "
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
