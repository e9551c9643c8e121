"""Cross-dataset evaluation: a model on labelled photos as well as on crop datasets, one table for all.

Three kinds of data:
- a CSV of labelled boxes (`file` or `image`, left, top, right, bottom, label; paths relative to the CSV's
  folder, e.g. ExpW): `evaluate_boxes(recognizer, csv, match="detect")` runs the whole path a user runs —
  detect, match each labelled box to a detection (IoU of the squared detection box >= 0.4, one-to-one),
  classify the matched face; a labelled face with no match counts as wrong. `match="boxes"` classifies the
  labelled boxes themselves, cropped by `Recognizer.crops` exactly as a detection box would be;
- a folder per class of photos: `evaluate_photo_folder` classifies the largest face of each photo; a photo
  with no face counts as wrong;
- a crop dataset (FER2013, CK+48, any folder of face crops): `evaluate_crops` on a split of it.

Labels are mapped to canonical names (anger → angry, …); faces of classes the model lacks (e.g. CK+'s
contempt) are dropped and counted. Every result is a `PhotoEvaluation`; `format_table` puts several in one
table, `write_evaluations` writes their metrics, reports and confusion plots.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import plots
from .atomic import write_json, write_text
from .data.classes import CANONICAL_ORDER, canonical_name, is_emotion
from .data.dataset import FaceDataset
from .data.folders import find_layout, scan_folder
from .data.images import load_image
from .errors import DataError
from .evaluate import Evaluation, evaluate
from .faces import Detection
from .faces.detector import match_boxes
from .models.classifier import FaceClassifier

MIN_IOU = 0.4  # a labelled box and a squared detection box are the same face at IoU >= this
MIN_INSIDE = 0.5  # a labelled box must have at least this fraction of its area inside its image
BOX_COLUMNS = ("left", "top", "right", "bottom")
NO_FACE = "no face"


@dataclass
class LabelledFace:
    """One labelled face of a photo: `box` (x1, y1, x2, y2) or None (the photo's largest face)."""

    path: Path
    box: tuple[float, float, float, float] | None
    label: str  # canonical class name
    where: str  # "annotations.csv: row 12" or the photo's path, for errors and the list of misses


@dataclass
class PhotoEvaluation(Evaluation):
    """An `Evaluation` with faces that may not have been found (`y_pred` -1) and dropped classes.

    mode: "detect" (labelled boxes matched to detections), "boxes" (labelled boxes classified),
    "largest" (largest face of each photo), or "crops" (a dataset of face crops).
    """

    dataset: str = ""
    mode: str = "crops"
    found: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    sources: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    description: str = ""  # how the split was made (crop datasets)
    split_detail: str = ""  # what the split is, e.g. "PrivateTest"
    crops: np.ndarray | None = field(default=None, repr=False)  # what the classifier saw (N×S×S; 0: missed)

    @property
    def split_label(self) -> str:
        return f"{self.split} ({self.split_detail})" if self.split_detail else self.split

    def has_probs(self) -> np.ndarray:  # the faces found: a missed face has no probabilities
        return self.found

    @property
    def found_rate(self) -> float:
        return float(self.found.mean()) if len(self.found) else 0.0

    @property
    def found_accuracy(self) -> float:
        correct = self.y_true[self.found] == self.y_pred[self.found]
        return float(correct.mean()) if len(correct) else 0.0

    @property
    def per_class_recall(self) -> dict[str, float]:
        return {name: float((self.y_pred[self.y_true == i] == i).mean())
                for i, name in enumerate(self.class_names) if (self.y_true == i).any()}

    @property
    def macro_recall(self) -> float:
        recalls = list(self.per_class_recall.values())
        return float(np.mean(recalls)) if recalls else 0.0

    @property
    def missed(self) -> list[str]:
        return [s for s, f in zip(self.sources, self.found) if not f]

    @property
    def confusion_names(self) -> list[str]:
        return self.class_names + ([NO_FACE] if not self.found.all() else [])

    @property
    def confusion_with_misses(self) -> np.ndarray:
        """Rows: true class; columns: predicted class, then "no face" when some face was missed."""
        k = len(self.confusion_names)
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (self.y_true, np.where(self.y_pred < 0, k - 1, self.y_pred)), 1)
        return matrix

    def summary(self) -> dict:
        return {"dataset": self.dataset, "split": self.split_label, "mode": self.mode,
                "faces": len(self.y_true), "accuracy": self.accuracy, "macro_recall": self.macro_recall,
                "found_rate": self.found_rate, "found_accuracy": self.found_accuracy, "nll": self.loss,
                "ece": self.ece, "dropped": self.dropped}

    def to_dict(self) -> dict:
        return {**super().to_dict(), **self.summary(), "description": self.description,
                "per_class_recall": self.per_class_recall, "confusion_names": self.confusion_names,
                "confusion_with_misses": self.confusion_with_misses.tolist(), "missed": self.missed}

    def report_text(self, max_missed: int | None = None) -> str:
        lines = [f"{self.dataset or 'data'} ({self.mode}, {self.split_label})"
                 + (f": {self.description}" if self.description else ""),
                 f"macro recall {self.macro_recall:.4f}; faces found {self.found_rate:.1%}, "
                 f"accuracy on found {self.found_accuracy:.4f}"]
        if self.dropped:
            lines.append("dropped (classes the model lacks): "
                         + ", ".join(f"{k} {v}" for k, v in self.dropped.items()))
        first, body = super().report_text().split("\n", 1)
        lines.insert(1, first)
        missed = self.missed
        if missed:
            shown = missed if max_missed is None else missed[:max_missed]
            more = f" (first {len(shown)})" if len(shown) < len(missed) else ""
            body += f"\nno face found for {len(missed)}{more}:\n" + "\n".join(f"  {m}" for m in shown) + "\n"
        return "\n".join(lines) + "\n" + body


# ---------------------------------------------------------------- reading labelled photos

def _column(names: list[str], wanted: tuple[str, ...], path: Path) -> str:
    lowered = {n.strip().lower(): n for n in names}
    for w in wanted:
        if w in lowered:
            return lowered[w]
    raise DataError(f"{path}: row 1: no {' or '.join(repr(w) for w in wanted)} column "
                    f"(columns: {', '.join(names)}); expected file,left,top,right,bottom,label")


def _image_size(path: Path, where: str, sizes: dict[Path, tuple[int, int]]) -> tuple[int, int]:
    if path not in sizes:
        if not path.is_file():
            raise DataError(f"{where}: {path}: no such image file")
        try:
            with Image.open(path) as image:
                sizes[path] = image.size
        except (OSError, Image.DecompressionBombError) as exc:
            raise DataError(f"{where}: {path}: not a readable image ({exc})") from None
    return sizes[path]


def _check_box(box: tuple[float, ...], size: tuple[int, int], where: str) -> None:
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise DataError(f"{where}: empty box {list(box)} (needs right > left and bottom > top)")
    w, h = size
    inside = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0))
    if inside < MIN_INSIDE * (x2 - x1) * (y2 - y1):
        raise DataError(f"{where}: box {list(box)} lies outside the {w}x{h} image")


def _parse_row(row: dict, columns: dict[str, str], root: Path, where: str,
               sizes: dict[Path, tuple[int, int]]) -> LabelledFace:
    values = [row.get(columns[k]) for k in ("file", *BOX_COLUMNS, "label")]
    if any(v is None or not v.strip() for v in values):
        raise DataError(f"{where}: missing value(s); expected file,left,top,right,bottom,label")
    try:
        box = tuple(float(v) for v in values[1:5])
    except ValueError:
        raise DataError(f"{where}: box {values[1:5]} is not four numbers") from None
    if not all(np.isfinite(box)):
        raise DataError(f"{where}: box {list(box)} is not four finite numbers")
    label = values[5]
    if not is_emotion(label):
        raise DataError(f"{where}: unknown label {label!r}; expected one of {', '.join(CANONICAL_ORDER)}")
    path = root / values[0].strip()
    _check_box(box, _image_size(path, where, sizes), where)
    return LabelledFace(path, box, canonical_name(label), where)


def read_box_csv(path: str | os.PathLike) -> list[LabelledFace]:
    """Every labelled face of a boxes CSV, checked: columns, numbers, labels, image files, boxes in images.

    Raises DataError naming the CSV and row (the header is row 1) at the first fault.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            names = list(reader.fieldnames or [])
            columns = {"file": _column(names, ("file", "image"), path)}
            columns |= {k: _column(names, (k,), path) for k in (*BOX_COLUMNS, "label")}
            sizes: dict[Path, tuple[int, int]] = {}
            faces = [_parse_row(row, columns, path.parent, f"{path}: row {i}", sizes)
                     for i, row in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as a CSV ({exc})") from None
    if not faces:
        raise DataError(f"{path}: no labelled faces")
    return faces


def read_photo_folder(root: str | os.PathLike) -> list[LabelledFace]:
    """A folder per class of photos (`<root>[/<split>]/<class>/*`), one face (the largest) per photo."""
    root = Path(root)
    entries, dirs = scan_folder(root)
    layout = find_layout([e.rel for e in entries], dirs, str(root), "folders")
    return [LabelledFace(root / rel, None, canonical_name(name), str(root / rel))
            for rel, name in zip(layout.files, layout.classes)]


def is_box_csv(path: str | os.PathLike) -> bool:
    """Whether `path` is (or is a folder holding) an annotations.csv of labelled boxes: a CSV with a box
    column or a file/image column (FER2013's and CK+'s CSVs have neither)."""
    path = box_csv_path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        header = {h.strip().lower() for h in next(csv.reader(handle), [])}
    return bool(header & {*BOX_COLUMNS, "file", "image"}) and "pixels" not in header


def box_csv_path(path: str | os.PathLike) -> Path:
    """A folder holding annotations.csv stands for that CSV."""
    path = Path(path)
    return path / "annotations.csv" if path.is_dir() and (path / "annotations.csv").is_file() else path


# ---------------------------------------------------------------- evaluating

def _keep_known(faces: list[LabelledFace],
                class_names: list[str]) -> tuple[list[LabelledFace], dict[str, int]]:
    dropped = Counter(f.label for f in faces if f.label not in class_names)
    kept = [f for f in faces if f.label in class_names]
    if not kept:
        raise DataError(f"no labelled face of the model's classes ({', '.join(class_names)}); "
                        f"the data has {', '.join(dropped)}")
    return kept, dict(sorted(dropped.items()))


def faces_by_photo(faces: list[LabelledFace]) -> dict[Path, list[int]]:
    groups: dict[Path, list[int]] = {}
    for i, face in enumerate(faces):
        groups.setdefault(face.path, []).append(i)
    return groups


match_detections = match_boxes  # the labelled faces' matching: one-to-one, best IoU first


def match_squared(labelled_boxes: np.ndarray, detected_boxes: list | np.ndarray,
                  min_iou: float = MIN_IOU) -> np.ndarray:
    """For each labelled box (N×4), the index of the detection box that matches it once made square, or -1
    (one-to-one, `match_detections`): how every photo evaluation pairs labels with detections."""
    squares = np.array([Detection(tuple(box), 1.0).square().box for box in detected_boxes]).reshape(-1, 4)
    return match_detections(np.asarray(labelled_boxes, dtype=np.float64).reshape(-1, 4), squares, min_iou)


def _face_probs(face, class_names: list[str]) -> np.ndarray:
    return np.array([face.probs[name] for name in class_names], dtype=np.float32)


Scored = tuple[np.ndarray, np.ndarray]  # a face's probabilities and the crop the classifier saw


def _detect_photo(recognizer, path: Path, faces: list[LabelledFace], min_iou: float) -> list[Scored | None]:
    """Each labelled face of one photo through the full path (None: not found)."""
    result = recognizer(path)
    found = result.faces
    if faces[0].box is None:  # a folder photo: its largest face
        largest = max(range(len(found)), key=lambda i: Detection(found[i].box, 1.0).area, default=-1)
        match = np.array([largest])
    else:
        match = match_squared(np.array([f.box for f in faces]), [f.box for f in found], min_iou)
    matched = [found[m] for m in match if m >= 0]  # cut again (cheap) to keep the user's path untouched
    crops = iter(recognizer.crops(result.image, [Detection(f.box, f.score, f.landmarks) for f in matched]))
    return [None if m < 0 else (_face_probs(found[m], recognizer.class_names), next(crops)) for m in match]


def _classify_boxes(recognizer, path: Path, faces: list[LabelledFace]) -> list[Scored]:
    """The labelled boxes themselves, cropped as the Recognizer crops a detection."""
    crops = recognizer.crops(load_image(path, mode="rgb"), [Detection(f.box, 1.0) for f in faces])
    return list(zip(recognizer.classifier.predict_proba(crops), crops))


def evaluate_faces(recognizer, faces: list[LabelledFace], dataset: str, match: str = "detect",
                   min_iou: float = MIN_IOU, progress: bool | None = None) -> PhotoEvaluation:
    """Evaluate `recognizer` on labelled faces of photos (see the module's doc for `match`)."""
    if match not in ("detect", "boxes"):
        raise ValueError(f"match must be 'detect' or 'boxes', got {match!r}")
    names = list(recognizer.class_names)
    kept, dropped = _keep_known(faces, names)
    scored: list[Scored | None] = [None] * len(kept)
    groups = faces_by_photo(kept)
    for path, index in tqdm(groups.items(), desc=dataset, unit="photo", leave=False,
                            disable=None if progress is None else not progress):
        photo = [kept[i] for i in index]
        got = _classify_boxes(recognizer, path, photo) if match == "boxes" else \
            _detect_photo(recognizer, path, photo, min_iou)
        for i, face in zip(index, got):
            scored[i] = face
    return _photo_result(kept, scored, names, dataset,
                         "largest" if kept[0].box is None else match, dropped, recognizer.input_size)


def _photo_result(faces: list[LabelledFace], scored: list[Scored | None], names: list[str], dataset: str,
                  mode: str, dropped: dict[str, int], size: int) -> PhotoEvaluation:
    found = np.array([s is not None for s in scored], dtype=bool)
    matrix = np.stack([np.zeros(len(names), np.float32) if s is None else s[0] for s in scored])
    crops = np.stack([np.zeros((size, size), np.uint8) if s is None else s[1] for s in scored])
    y_pred = np.where(found, matrix.argmax(1), -1)
    y_true = np.array([names.index(f.label) for f in faces])
    sources = [f.where if f.box is None else f"{f.where}: {f.path.name} {[round(v) for v in f.box]}"
               for f in faces]
    return PhotoEvaluation("all", names, y_true, y_pred, matrix, dataset=dataset, mode=mode, found=found,
                           sources=sources, dropped=dropped, crops=crops)


def evaluate_boxes(recognizer, csv_path: str | os.PathLike, match: str = "detect", min_iou: float = MIN_IOU,
                   progress: bool | None = None, name: str | None = None) -> PhotoEvaluation:
    """`recognizer` on a CSV of labelled boxes: the full path (match="detect") or the boxes ("boxes")."""
    path = box_csv_path(csv_path)
    faces = read_box_csv(path)
    return evaluate_faces(recognizer, faces, name or dataset_name(path), match, min_iou, progress)


def evaluate_photo_folder(recognizer, root: str | os.PathLike, progress: bool | None = None,
                          name: str | None = None) -> PhotoEvaluation:
    """`recognizer` on a folder per class of photos: the largest face of each; no face counts as wrong."""
    faces = read_photo_folder(root)
    return evaluate_faces(recognizer, faces, name or dataset_name(root), "detect", progress=progress)


def drop_unknown_classes(data: FaceDataset, class_names: list[str]) -> tuple[FaceDataset, dict[str, int]]:
    """`data` without the images of classes the model lacks, and how many of each were dropped."""
    kept, dropped = data.only_classes(class_names)
    if dropped and not len(kept):
        raise DataError(f"{data.meta.get('root') or data.name}: no image of the model's classes "
                        f"({', '.join(class_names)}); the data has {', '.join(dropped)}")
    return kept, dropped


def evaluate_crops(classifier: FaceClassifier, data: FaceDataset, split: str = "test", dataset: str = "",
                   description: str = "", split_detail: str = "") -> PhotoEvaluation:
    """`classifier` on a dataset of face crops, classes the model lacks dropped and counted."""
    kept, dropped = drop_unknown_classes(data, classifier.class_names)
    e = evaluate(classifier, kept, split)
    sources = [str(s) for s in kept.sources] if kept.sources is not None else [""] * len(kept)
    return PhotoEvaluation(e.split, e.class_names, e.y_true, e.y_pred, e.probs, dataset=dataset or data.name,
                           mode="crops", found=np.ones(len(kept), dtype=bool), sources=sources,
                           dropped=dropped, description=description, split_detail=split_detail,
                           crops=kept.images)


def dataset_name(path: str | os.PathLike) -> str:
    """A short name for a dataset path: the folder's name (a CSV's folder for annotations.csv)."""
    path = Path(path).resolve()
    return path.parent.name if path.is_file() and path.name.lower() == "annotations.csv" else path.name


# ---------------------------------------------------------------- table and files

def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def format_table(evaluations: list[PhotoEvaluation], model: str = "") -> str:
    """One Markdown table row per evaluation (dataset), the model named in the header."""
    head = (f"| {model or 'model'} → dataset | split | path | faces | accuracy | macro recall | found "
            "| accuracy on found | NLL | ECE | dropped |")
    rows = [head, "|" + "---|" * 11]
    for e in evaluations:
        dropped = ", ".join(f"{k} {v}" for k, v in e.dropped.items()) or "–"
        rows.append(f"| {e.dataset} | {e.split_label} | {e.mode} | {len(e.y_true)} | {_pct(e.accuracy)} "
                    f"| {_pct(e.macro_recall)} | {_pct(e.found_rate)} | {_pct(e.found_accuracy)} "
                    f"| {e.loss:.3f} | {e.ece:.3f} | {dropped} |")
    return "\n".join(rows) + "\n"


def unique_names(evaluations: list[PhotoEvaluation]) -> list[str]:
    """A folder name per evaluation: its dataset name, and mode or a number where names repeat."""
    names = [e.dataset or "data" for e in evaluations]
    names = [f"{n}-{e.mode}" if names.count(n) > 1 else n for n, e in zip(names, evaluations)]
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def write_evaluation(out: str | os.PathLike, e: PhotoEvaluation) -> None:
    """metrics.json, report.txt and plots/confusion*.png of one evaluation in `out` (each file atomic)."""
    out = Path(out)
    write_json(out / "metrics.json", {e.split: e.to_dict()})
    write_text(out / "report.txt", e.report_text() + "\n")
    title = f"{e.dataset} ({e.mode}, {e.split})"
    for normalize, suffix in ((False, ""), (True, "_normalised")):
        plots.plot_confusion(e.confusion_with_misses, e.confusion_names,
                             out / "plots" / f"confusion_{e.split}{suffix}.png", normalize=normalize,
                             title=title)
    if e.found.any():
        e.plot_reliability(out / "plots" / f"reliability_{e.split}.png", title=f"{e.dataset} ({e.mode})")
    worst = e.top_losses()
    if e.crops is not None and len(worst):
        plots.plot_top_losses(e.crops, worst, e.y_true, e.probs, e.class_names,
                              out / "plots" / f"top_losses_{e.split}.png")
        write_text(out / f"top_losses_{e.split}.csv", top_losses_csv(e, worst))


def top_losses_csv(e: PhotoEvaluation, worst: np.ndarray) -> str:
    """The faces of the top-losses plot, in its order: where each comes from, its label and the answer."""
    rows = [["rank", "source", "label", "answer", "p_answer", "p_label"]]
    for rank, i in enumerate(worst, 1):
        answer = int(e.probs[i].argmax())
        rows.append([str(rank), e.sources[i], e.class_names[e.y_true[i]], e.class_names[answer],
                     f"{e.probs[i, answer]:.4f}", f"{e.probs[i, e.y_true[i]]:.4f}"])
    stream = io.StringIO()
    csv.writer(stream, lineterminator="\n").writerows(rows)
    return stream.getvalue()


def write_evaluations(out: str | os.PathLike, evaluations: list[PhotoEvaluation],
                      model: str = "") -> list[Path]:
    """One evaluation: its files in `out`; several: one sub-folder each, plus table.md and summary.json."""
    out = Path(out)
    if len(evaluations) == 1:
        write_evaluation(out, evaluations[0])
        return [out]
    folders = [out / name for name in unique_names(evaluations)]
    for folder, e in zip(folders, evaluations):
        write_evaluation(folder, e)
    write_json(out / "summary.json", {"model": model, "datasets": [
        {**e.summary(), "folder": f.name} for f, e in zip(folders, evaluations)]})
    write_text(out / "table.md", format_table(evaluations, model))
    return folders
