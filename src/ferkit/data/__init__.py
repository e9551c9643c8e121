"""Datasets: FER2013 (jpg folders or CSV), CK+ (CK+48 folders or CSV), any folder-per-class tree,
and one-file packs of a folder, all read into a `FaceDataset` by `load_dataset`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, DataError, ImageError
from .cache import (
    cache_file,
    default_cache_dir,
    file_fingerprint,
    folder_fingerprint,
    load_cached,
    save_cached,
)
from .classes import CANONICAL_ORDER, canonical_name, order_classes
from .dataset import (
    PRIVATE_TEST,
    PUBLIC_TEST,
    TEST,
    TRAIN,
    TRAINING,
    USAGES,
    VALIDATION,
    FaceDataset,
)
from .fer2013 import csv_format, load_csv, read_emotion_csv
from .ferplus import FERPLUS_CLASSES, LABEL_MODES, find_ferplus, with_ferplus_labels
from .folders import FOLDER_FORMATS, IMAGE_EXTENSIONS, find_layout, read_folder, scan_folder
from .pack import pack_folder, read_pack
from .splits import group_kfold, group_split, stratified_split

FORMATS = ("fer2013-folders", "fer2013-csv", "ckplus", "ckplus-csv", "folders", "pack")
CSV_FORMATS = ("fer2013-csv", "ckplus-csv")

__all__ = [
    "CANONICAL_ORDER", "FERPLUS_CLASSES", "FORMATS", "IMAGE_EXTENSIONS", "LABEL_MODES", "PRIVATE_TEST",
    "PUBLIC_TEST", "TEST", "TRAIN", "TRAINING", "USAGES", "VALIDATION", "FaceDataset", "canonical_name",
    "detect_format", "group_kfold", "group_split", "load_dataset", "order_classes", "pack_folder",
    "stratified_split",
]

Builder = Callable[[int | None, bool], FaceDataset]


def detect_format(path: str | os.PathLike) -> str:
    """The format `load_dataset(path)` would read: one of FORMATS.

    Folders: "fer2013-folders" when every image is named Training_/PublicTest_/PrivateTest_*
    (and split folders, if any, are train/ and test/ as in the Kaggle layout), "ckplus" for
    <class>/S<subject>_<seq>_<frame> files, else "folders". Files: ".npz" is a
    "pack"; a ".csv" is "ckplus-csv" when its name contains "ck" or a label 7 (contempt) occurs,
    else "fer2013-csv".
    """
    path = _existing(path)
    if path.is_dir():
        entries, dirs = scan_folder(path)
        return find_layout([e.rel for e in entries], dirs, str(path)).format
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "pack"
    if suffix == ".csv":
        return csv_format(path, read_emotion_csv(path, labels_only=True).labels)
    raise DataError(f"{path}: is a file, not a dataset; expected a folder, a .csv or a .npz pack")


def load_dataset(
    path: str | os.PathLike,
    format: str = "auto",
    image_size: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    strict: bool = False,
    labels: str = "dataset",
    ferplus: str | os.PathLike = "",
) -> FaceDataset:
    """Read a dataset as uint8 gray images N×H×W with labels in canonical class order.

    format: "auto" (see `detect_format`) or one of FORMATS; a folder format given for a `.npz`
        reads the packed folder with that format.
    image_size: None keeps the native size when all images share it (else resizes to 48);
        an int resizes every image to that square size.
    cache: keep the decoded arrays in `cache_dir` (default $FERKIT_CACHE or ~/.cache/ferkit);
        a later load of unchanged files reads them back in a fraction of a second.
    strict: unreadable image files in a folder are skipped by default, with one warning
        "skipped K unreadable images (first: PATH: reason)" and their messages in
        `meta["skipped"]`; strict=True raises ImageError for the first one instead.
    labels: "dataset" (the dataset's own labels), or for FER2013 (fer2013.csv or the Kaggle jpgs) the
        FER+ votes: "ferplus-majority" (labels = the majority, see `ferkit.data.ferplus`) or
        "ferplus-votes" (the same, plus the vote distribution as `soft_labels`). Images without a FER+
        row or majority are dropped, counted in one warning. "fer2013+ferplus-votes": every image with
        FER2013's own label, the vote distribution as `soft_labels` where usable (else the label's
        one-hot row).
    ferplus: the folder holding fer2013new.csv (and, for the jpg layout, fer2013_jpg_to_ferplus_row.csv);
        default: the dataset's folder, then a ferplus/ folder beside it.

    Raises DataError (ImageError for an image with strict) naming the file or CSV row at fault.
    """
    if format != "auto" and format not in FORMATS:
        raise ConfigError(f"unknown dataset format {format!r}; use auto or one of {', '.join(FORMATS)}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ConfigError(f"image_size must be a positive int or None, got {image_size!r}")
    if labels not in LABEL_MODES:
        raise ConfigError(f"unknown labels {labels!r}; use {', '.join(LABEL_MODES)}")
    path = _existing(path)
    ferplus_dir = find_ferplus(path, ferplus) if labels != "dataset" else None
    fingerprint, build = _source(path, format)
    stored = cache_file(Path(cache_dir or default_cache_dir()), path, format, image_size, fingerprint)
    data = load_cached(stored) if cache else None
    if data is None:
        data = build(image_size, strict)
        if cache:
            save_cached(stored, data)
    skipped = data.meta.get("skipped", [])
    if skipped and strict:
        raise ImageError(skipped[0])
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable images (first: {skipped[0]})", stacklevel=2)
    if ferplus_dir is not None:  # after the cache: the votes are one small CSV, cheap to read every time
        data = with_ferplus_labels(data, labels, ferplus_dir)
    return data


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return path.resolve()


def _source(path: Path, format: str) -> tuple[str, Builder]:
    """A fingerprint of the source for the cache, and the function that reads it."""
    if path.is_dir():
        if format in CSV_FORMATS or format == "pack":
            raise DataError(f"{path}: is a folder, but format {format!r} reads a single file")
        entries, dirs = scan_folder(path)
        layout = find_layout([e.rel for e in entries], dirs, str(path), format)
        return folder_fingerprint(entries), lambda size, strict: read_folder(path, layout, size, strict)
    suffix = path.suffix.lower()
    if format in FOLDER_FORMATS and suffix != ".npz":
        raise DataError(f"{path}: is a file, but format {format!r} reads a folder (or a .npz pack of one)")
    if format in ("pack", *FOLDER_FORMATS) or (format == "auto" and suffix == ".npz"):
        inner = format if format in FOLDER_FORMATS else "auto"
        return file_fingerprint(path), lambda size, strict: read_pack(path, inner, size, strict)
    if format in CSV_FORMATS or suffix == ".csv":
        return file_fingerprint(path), lambda size, strict: load_csv(path, format, size)
    raise DataError(f"{path}: is a file, not a dataset; expected a folder, a .csv or a .npz pack")
