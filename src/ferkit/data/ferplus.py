"""FER+ labels (Microsoft FERPlus) for FER2013: ten annotators' votes per image instead of one label.

`fer2013new.csv` has one row per row of the original `fer2013.csv`: Usage, Image name, then the vote
counts of neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown and NF (not a
face). A `fer2013.csv` is joined by row order; the Kaggle jpg layout through
`fer2013_jpg_to_ferplus_row.csv` (each jpg's 0-based FER+ data row, column `ferplus_row`).

Classes: the seven FER2013 classes, so that a model trained on FER+ labels keeps the class set of
FER2013 evaluation and of the bundled model; contempt votes are left out (0.6 % of the images have a
contempt majority, too few to learn from).

Majority rule: the label is the category with the most votes among all ten columns; an image is dropped
when that top count is shared by two categories or more (an ambiguous face), or when it belongs to
unknown, NF or contempt. The vote distribution (`soft_labels`) is the seven emotions' votes, normalised
to sum to 1, for the same images.

Mixed mode ("fer2013+ferplus-votes"): every FER2013 image stays, with FER2013's own label; `soft_labels`
is the vote distribution where the votes are usable (the top count belongs to one or more of the seven
emotions, so ties between emotions count) and the FER2013 one-hot row elsewhere (no FER+ row, or a top of
unknown, NF or contempt). The trainer's target w · soft_labels + (1 − w) · one-hot(label) is then the
FER2013 one-hot alone for those images.
"""

from __future__ import annotations

import csv
import os
import posixpath
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .classes import canonical_name
from .dataset import FaceDataset
from .fer2013 import FER2013_LABELS

FERPLUS_FILE = "fer2013new.csv"
MAPPING_FILE = "fer2013_jpg_to_ferplus_row.csv"
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
# "dataset": the dataset's own labels; FER+ majority labels; FER+ majority labels plus vote distributions;
# FER2013's own labels plus vote distributions (every image kept).
LABEL_MODES = ("dataset", "ferplus-majority", "ferplus-votes", "fer2013+ferplus-votes")
MIXED_MODE = "fer2013+ferplus-votes"
FERPLUS_CLASSES = list(FER2013_LABELS)  # the seven FER2013 classes, in their label order
_FER2013_FORMATS = ("fer2013-csv", "fer2013-folders")


@dataclass
class FerPlusVotes:
    usage: np.ndarray  # N str: Training / PublicTest / PrivateTest
    votes: np.ndarray  # N×10 int, columns VOTE_COLUMNS


def read_votes(path: Path) -> FerPlusVotes:
    """`fer2013new.csv`: columns Usage, Image name and the ten VOTE_COLUMNS (any order, any case)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    header = [c.strip() for c in rows[0]] if rows else []
    columns = [c.lower() for c in header]
    missing = [c for c in ("Usage", *VOTE_COLUMNS) if c.lower() not in columns]
    if missing:
        found = ", ".join(c[:30] for c in header if c) or "none"
        raise DataError(f"{path}: not a FER+ vote file: missing column(s) {', '.join(missing)} "
                        f"(found columns: {found})")
    picks = [columns.index(c.lower()) for c in VOTE_COLUMNS]
    i_usage = columns.index("usage")
    data = [r for r in rows[1:] if any(f.strip() for f in r)]
    if not data:
        raise DataError(f"{path}: no data rows under the header")
    votes = np.zeros((len(data), len(VOTE_COLUMNS)), dtype=np.int64)
    for i, fields in enumerate(data):
        if len(fields) != len(header):
            raise DataError(f"{path}: row {i + 2}: {len(fields)} fields, expected {len(header)}")
        try:
            votes[i] = [int(fields[j]) for j in picks]
        except ValueError:
            raise DataError(f"{path}: row {i + 2}: vote counts must be integers") from None
    if (votes < 0).any():
        raise DataError(f"{path}: row {int(np.argmax((votes < 0).any(1))) + 2}: negative vote count")
    return FerPlusVotes(np.array([r[i_usage].strip() for r in data]), votes)


def majority(votes: np.ndarray) -> np.ndarray:
    """Index into FERPLUS_CLASSES of each row's majority, -1 for a tie at the top or a top of unknown, NF
    or contempt (see the module docstring)."""
    votes = np.asarray(votes)
    top = votes.max(1)
    winner = votes.argmax(1)
    to_class = np.array([_class_index(c) for c in VOTE_COLUMNS])
    label = to_class[winner]
    label[((votes == top[:, None]).sum(1) > 1) | (top == 0)] = -1
    return label


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """N×7 float32: the votes for FERPLUS_CLASSES over their sum (zeros where no emotion has a vote)."""
    votes = np.asarray(votes)
    out = np.zeros((len(votes), len(FERPLUS_CLASSES)), dtype=np.float32)
    for column, name in enumerate(VOTE_COLUMNS):
        index = _class_index(name)
        if index >= 0:
            out[:, index] = votes[:, column]
    total = out.sum(1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def usable_votes(votes: np.ndarray) -> np.ndarray:
    """N bool: the top vote count belongs to at least one of the seven emotions and to none of contempt,
    unknown or NF (ties between emotions are usable: their distribution says the face is ambiguous)."""
    votes = np.asarray(votes)
    emotion = np.array([_class_index(c) >= 0 for c in VOTE_COLUMNS])
    top = votes.max(1)
    return (votes[:, emotion].max(1) == top) & (votes[:, ~emotion].max(1) < top)


def scores_against_majority(labels: str) -> bool:
    """Whether data loaded with `labels` is labelled (and so scored) with the FER+ majority."""
    return labels in ("ferplus-majority", "ferplus-votes")


def _class_index(column: str) -> int:
    name = canonical_name(column)
    return FERPLUS_CLASSES.index(name) if name in FERPLUS_CLASSES else -1


def find_ferplus(data_path: str | os.PathLike, ferplus: str | os.PathLike = "") -> Path:
    """The folder holding fer2013new.csv: `ferplus` (a folder, or the CSV itself) when given, else the
    dataset's own folder (or the folder of its CSV), then a `ferplus`/`FERPlus` folder beside it."""
    if ferplus:
        path = Path(ferplus).expanduser()
        folder = path.parent if path.name == FERPLUS_FILE else path
        if not (folder / FERPLUS_FILE).is_file():
            raise DataError(f"{folder}: no {FERPLUS_FILE} there (the FER+ votes; pass the folder holding it)")
        return folder.resolve()
    data = Path(data_path).expanduser().resolve()
    home = data if data.is_dir() else data.parent
    candidates = [home, home.parent / "ferplus", home.parent / "FERPlus", home / "ferplus"]
    for folder in candidates:
        if (folder / FERPLUS_FILE).is_file():
            return folder
    raise DataError(f"{data}: FER+ labels asked for, but no {FERPLUS_FILE} in {home} or a ferplus/ folder "
                    "beside it; pass its folder with --ferplus DIR")


def ferplus_rows(data: FaceDataset, folder: Path, count: int) -> np.ndarray:
    """The FER+ data row of every image of a FER2013 dataset, -1 where there is none."""
    format = data.meta.get("format")
    if format == "fer2013-csv":  # fer2013.csv and fer2013new.csv share their row order
        if len(data) != count:
            raise DataError(f"{data.meta.get('root')}: {len(data)} rows, but {folder / FERPLUS_FILE} has "
                            f"{count}; FER+ labels join fer2013.csv row by row, so both must be complete")
        return np.arange(count)
    mapping_path = folder / MAPPING_FILE
    if not mapping_path.is_file():
        raise DataError(f"{folder}: no {MAPPING_FILE}, which maps the FER2013 jpgs to FER+ rows "
                        "(or use fer2013.csv, which FER+ follows row by row)")
    row_of = _read_mapping(mapping_path, count)
    return np.array([row_of.get(_key(str(s)), -1) for s in data.sources], dtype=np.int64)


def _key(rel: str) -> str:
    """'<class>/<file name>' with the class canonical: robust to a parent folder above train/ and test/."""
    parent, name = posixpath.split(rel.replace(os.sep, "/"))
    return f"{canonical_name(posixpath.basename(parent))}/{name}"


def _read_mapping(path: Path, count: int) -> dict[str, int]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"our_file", "ferplus_row"} <= set(reader.fieldnames or ()):
                raise DataError(f"{path}: missing column our_file or ferplus_row "
                                f"(found columns: {', '.join(reader.fieldnames or ()) or 'none'})")
            pairs = [(r["our_file"], r["ferplus_row"]) for r in reader]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    out = {}
    for line, (rel, row) in enumerate(pairs, start=2):
        if not row.strip():
            continue
        if not row.strip().isdigit() or int(row) >= count:
            raise DataError(f"{path}: row {line}: ferplus_row {row!r} is not a row of the {count} FER+ rows")
        out[_key(rel)] = int(row)
    return out


def with_ferplus_labels(data: FaceDataset, labels: str, folder: Path) -> FaceDataset:
    """`data` (FER2013, csv or jpg layout) relabelled with FER+: the majority label of each image, and for
    labels="ferplus-votes" the vote distribution as `soft_labels`. Images without a FER+ row or a majority
    are dropped, counted in one warning; `meta["ferplus"]` holds the counts. labels="fer2013+ferplus-votes"
    keeps every image and its own label instead (see the module docstring)."""
    if labels not in LABEL_MODES[1:]:
        raise ConfigError(f"unknown labels {labels!r}; use {', '.join(LABEL_MODES)}")
    format = data.meta.get("format")
    if format not in _FER2013_FORMATS:
        raise DataError(f"{data.meta.get('root') or data.name}: FER+ labels exist for FER2013 only "
                        f"(fer2013.csv or the Kaggle jpg folders), not for format {format!r}")
    votes, rows = _votes_of(data, folder)
    if labels == MIXED_MODE:
        return _with_mixed_labels(data, votes, rows, folder)
    has_row = rows >= 0
    label = np.where(has_row, majority(votes), -1)
    keep = label >= 0
    counts = {"images": len(data), "no_ferplus_row": int((~has_row).sum()),
              "no_majority": int((has_row & ~keep).sum()), "kept": int(keep.sum())}
    if not keep.all():
        warnings.warn(f"FER+ labels: dropped {len(data) - counts['kept']} of {len(data)} images "
                      f"({counts['no_ferplus_row']} without a FER+ row, {counts['no_majority']} whose "
                      "majority is unknown, not a face, contempt or a tie)", stacklevel=3)
    soft = vote_distribution(votes[keep]) if labels == "ferplus-votes" else None
    relabelled = data.subset(keep)
    relabelled.labels, relabelled.soft_labels = label[keep], soft
    relabelled.class_names = list(FERPLUS_CLASSES)
    return _named(relabelled, labels, folder, counts)


def _votes_of(data: FaceDataset, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N×10 votes, N FER+ rows) of every image; rows -1 (and zero votes) where an image has none."""
    votes = read_votes(folder / FERPLUS_FILE)
    rows = ferplus_rows(data, folder, len(votes.votes))
    has_row = rows >= 0
    picked = np.where(has_row, rows, 0)
    if data.usage is not None and (data.usage[has_row] != votes.usage[picked[has_row]]).any():
        i = int(np.flatnonzero(has_row & (data.usage != votes.usage[picked]))[0])
        raise DataError(f"{data.sources[i]}: usage {data.usage[i]}, but its FER+ row {rows[i] + 2} says "
                        f"{votes.usage[rows[i]]}; the files do not belong together")
    return np.where(has_row[:, None], votes.votes[picked], 0), rows


def _with_mixed_labels(data: FaceDataset, votes: np.ndarray, rows: np.ndarray, folder: Path) -> FaceDataset:
    """Every image with its own label; soft labels = votes where usable, else the label's one-hot row."""
    usable = (rows >= 0) & usable_votes(votes)
    label = np.array([FERPLUS_CLASSES.index(name) for name in data.class_names], dtype=np.int64)[data.labels]
    one_hot = np.eye(len(FERPLUS_CLASSES), dtype=np.float32)[label]
    counts = {"images": len(data), "no_ferplus_row": int((rows < 0).sum()),
              "unusable_votes": int(((rows >= 0) & ~usable).sum()), "with_votes": int(usable.sum())}
    mixed = data.subset(slice(None))
    mixed.labels, mixed.class_names = label, list(FERPLUS_CLASSES)
    mixed.soft_labels = np.where(usable[:, None], vote_distribution(votes), one_hot)
    return _named(mixed, MIXED_MODE, folder, counts)


def _named(data: FaceDataset, labels: str, folder: Path, counts: dict) -> FaceDataset:
    data.name = f"{data.name} ({labels})"
    data.meta = {**data.meta, "labels": labels, "ferplus": {"folder": str(folder), **counts}}
    return data
