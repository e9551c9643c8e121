"""Where a model fails on real photos: accuracy by head turn, head tilt and face size.

    .venv/bin/python benchmarks/failure_modes.py [--model default] [--detector yunet] [--quick]

expw-dev, the path a user runs: every photo through `Recognizer` (the detector, the landmark framing,
the classifier with PyTorch fp32 as `ferkit evaluate` runs it), each labelled face matched one-to-one to a
squared detection (IoU >= 0.4). FER2013 PrivateTest: each 48x48 frame is classified as it comes, and the
detector, run on the frame shown 4x larger with context (as `benchmarks/face_framing.py` does), gives
its landmarks. The pose comes from the five landmarks:
  turn  the nose's sideways offset from the face's midline (half-way between the eyes' centre and the
        mouth's, along the eye line), in units of the eye-to-mouth height: about 0 for a frontal face,
        0.35 and more for a face turned well towards profile;
  tilt  the angle of the eye line, in degrees.
Face size is the labelled box's side in pixels of the expw-dev file (files are at most 256 px, so large
faces are capped near 128 px; small ones are faces that were small in the photo). A labelled face that the
detector misses counts as wrong in the size table; the pose tables cover the faces found (a missed face
has no landmarks). ExpW's file names begin with the web-search word that found the photo ("angry_worker_133"),
so a last table splits expw-dev by that word: what kind of photo each face comes from, beside its label.
--quick: 150 expw-dev faces and 300 PrivateTest frames drawn at random (seed 0).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from face_framing import upscaled  # noqa: E402

from ferkit.data import load_dataset  # noqa: E402
from ferkit.data.splits import make_splits  # noqa: E402
from ferkit.evaluate_photos import match_squared, read_box_csv  # noqa: E402
from ferkit.predict import Recognizer  # noqa: E402

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
TURN_BINS = (0.0, 0.1, 0.2, 0.35, np.inf)
TILT_BINS = (0.0, 10.0, 20.0, np.inf)
SIZE_BINS = (0.0, 48.0, 64.0, 96.0, np.inf)


@dataclass
class Scored:
    """One labelled face: its class, the predicted class ('' when not found), pose and size."""

    label: str
    predicted: str
    turn: float = np.nan
    tilt: float = np.nan
    side: float = np.nan
    query: str = ""  # the search word of the face's photo (expw-dev)


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(turn, tilt) of a face from its five landmarks (see the module docstring)."""
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(landmarks, np.float64).reshape(5, 2)
    along = right_eye - left_eye
    along /= np.linalg.norm(along)
    across = np.array([-along[1], along[0]])
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    height = abs(np.dot(mouth - eyes, across))
    midline = (np.dot(eyes, along) + np.dot(mouth, along)) / 2
    turn = (np.dot(nose, along) - midline) / max(height, 1e-6)
    return float(turn), float(np.degrees(np.arctan2(along[1], along[0])))


def expw_faces(recognizer: Recognizer, limit: int | None) -> list[Scored]:
    """expw-dev's labelled faces through the full user path (see the module docstring)."""
    faces = read_box_csv(DATASETS / "expw-dev" / "annotations.csv")
    faces = [faces[i] for i in subset(len(faces), limit)]
    scored = []
    for face in faces:
        found = recognizer(face.path).faces
        match = match_squared([face.box], [f.box for f in found])[0]
        side, query = float(face.box[2] - face.box[0]), search_word(face.path)
        if match < 0:
            scored.append(Scored(face.label, "", side=side, query=query))
            continue
        hit = found[match]
        turn, tilt = pose(hit.landmarks) if hit.landmarks is not None else (np.nan, np.nan)
        scored.append(Scored(face.label, hit.label, turn, tilt, side, query))
    return scored


def search_word(path: Path) -> str:
    """The ExpW query word of a photo, from its file name ("angry_worker_133_f0.jpg" → "angry")."""
    return path.name.split("_", 1)[0].lower()


def query_table(faces: list[Scored], min_faces: int = 40) -> None:
    """expw-dev by search word: faces, their labels, the share the model calls angry, and its accuracy.
    Words with fewer than `min_faces` faces are pooled."""
    counts = Counter(f.query for f in faces)
    common = [w for w, n in counts.most_common() if n >= min_faces]
    groups = [(w, [f for f in faces if f.query == w]) for w in common]
    rest = [f for f in faces if f.query not in common]
    groups += [(f"the other {len(counts) - len(common)} words", rest)] if rest else []
    print("\nexpw-dev by the search word that found the photo (the file name's first word; all labelled "
          "faces, a missed face is wrong)\n")
    print("| search word | faces | labels, most common first | labelled angry | says angry (found) "
          "| accuracy |")
    print("|---|---|---|---|---|---|")
    for word, group in groups:
        labels = Counter(f.label for f in group)
        mix = ", ".join(f"{k} {v}" for k, v in labels.most_common(4))
        found = [f for f in group if f.predicted]
        angry = sum(f.predicted == "angry" for f in found) / max(len(found), 1)
        right = sum(f.label == f.predicted for f in group) / len(group)
        print(f"| {word} | {len(group)} ({len(group) / len(faces):.0%}) | {mix} "
              f"| {labels.get('angry', 0) / len(group):.0%} | {angry:.0%} | {right:.1%} |")


def subset(n: int, limit: int | None) -> np.ndarray:
    """All n indices, or `limit` of them drawn with seed 0 (in order): the splits are sorted by class."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def fer2013_faces(recognizer: Recognizer, limit: int | None) -> list[Scored]:
    """FER2013 PrivateTest frames classified as they come, posed by the detector where it finds a face."""
    test = make_splits(load_dataset(DATASETS / "fer2013")).test
    pick = subset(len(test.images), limit)
    images, labels = test.images[pick], test.labels[pick]
    names = recognizer.class_names
    predicted = recognizer.classifier.predict_proba(images).argmax(1)
    scored = []
    for image, label, guess in zip(images, labels, predicted):
        found = [f for f in recognizer.detector.detect(upscaled(image)) if f.landmarks is not None]
        turn, tilt = pose(max(found, key=lambda f: f.area).landmarks) if found else (np.nan, np.nan)
        scored.append(Scored(test.class_names[label], names[guess], turn, tilt))
    return scored


def bucket_rows(values: np.ndarray, bins: tuple[float, ...], unit: str) -> list[tuple[str, np.ndarray]]:
    """(bucket name, mask over faces) per bucket of `values`."""
    rows = []
    for low, high in zip(bins[:-1], bins[1:]):
        name = f"≥ {low:g}{unit}" if np.isinf(high) else f"{low:g}–{high:g}{unit}"
        rows.append((name, (values >= low) & (values < high)))
    return rows


def table(title: str, datasets: dict[str, list[Scored]], attribute: str, bins: tuple[float, ...],
          unit: str = "", found_column: bool = False) -> None:
    """One Markdown table: per bucket and dataset, the share of faces, the accuracy and 'says angry'."""
    print(f"\n{title}\n")
    header = ["bucket"]
    for name in datasets:
        header += [f"{name}: faces", f"{name}: accuracy"]
        header += [f"{name}: found"] if found_column else []
        header += [f"{name}: says angry"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    cells: dict[str, list[str]] = {}
    for faces in datasets.values():
        values = np.abs(np.array([getattr(f, attribute) for f in faces], dtype=np.float64))
        right = np.array([f.label == f.predicted for f in faces])
        found = np.array([f.predicted != "" for f in faces])
        angry = np.array([f.predicted == "angry" for f in faces])
        measured = ~np.isnan(values)
        for bucket, mask in bucket_rows(values, bins, unit):
            n = int(mask.sum())
            row = [f"{n} ({n / max(measured.sum(), 1):.0%})", _pct(right, mask)]
            row += [_pct(found, mask)] if found_column else []
            cells.setdefault(bucket, []).extend(row + [_pct(angry, mask & found)])
    for bucket, row in cells.items():
        print(f"| {bucket} | " + " | ".join(row) + " |")


def _pct(hits: np.ndarray, mask: np.ndarray) -> str:
    return f"{hits[mask].mean():.1%}" if mask.any() else "–"


def reweighted(target: list[Scored], source: list[Scored]) -> tuple[float, float]:
    """Accuracy on `target`'s found faces, and the same with its turn buckets weighted as `source`'s."""
    def shares_and_accuracy(faces: list[Scored]) -> tuple[np.ndarray, np.ndarray]:
        faces = [f for f in faces if not np.isnan(f.turn)]
        turn = np.abs([f.turn for f in faces])
        right = np.array([f.label == f.predicted for f in faces])
        masks = [m for _, m in bucket_rows(turn, TURN_BINS, "")]
        return (np.array([m.mean() for m in masks]),
                np.array([right[m].mean() if m.any() else 0.0 for m in masks]))
    target_share, target_accuracy = shares_and_accuracy(target)
    source_share, _ = shares_and_accuracy(source)
    return float(target_share @ target_accuracy), float(source_share @ target_accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--quick", action="store_true",
                        help="150 expw-dev faces, 300 PrivateTest frames, at random")
    args = parser.parse_args()
    recognizer = Recognizer(args.model, detector=args.detector, backend="torch")
    expw = expw_faces(recognizer, 150 if args.quick else None)
    fer = fer2013_faces(recognizer, 300 if args.quick else None)
    print(f"{platform.machine()}; model {args.model}, detector {args.detector}, PyTorch fp32")
    posed = sum(not np.isnan(f.turn) for f in fer)
    print(f"expw-dev: {len(expw)} labelled faces, {sum(f.predicted != '' for f in expw)} found; "
          f"FER2013 PrivateTest: {len(fer)} frames, the detector posed {posed}")
    both = {"expw-dev": expw, "FER2013 PrivateTest": fer}
    table("Head turn (|turn|; faces with landmarks)", {k: [f for f in v if not np.isnan(f.turn)]
                                                       for k, v in both.items()}, "turn", TURN_BINS)
    table("Head tilt (|eye-line angle|; faces with landmarks)",
          {k: [f for f in v if not np.isnan(f.tilt)] for k, v in both.items()}, "tilt", TILT_BINS, "°")
    table("Face size in the expw-dev file (labelled box side; all labelled faces, a missed face is wrong)",
          {"expw-dev": expw}, "side", SIZE_BINS, " px", found_column=True)
    own, as_fer = reweighted(expw, fer)
    print(f"\nexpw-dev accuracy on found faces {own:.1%}; with its turn buckets weighted as FER2013 "
          f"PrivateTest's: {as_fer:.1%}")
    query_table(expw)


if __name__ == "__main__":
    main()
