"""FER2013: usage from the Kaggle jpg file names, and `emotion,pixels,Usage` CSVs (FER2013 and CK+)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .ckplus import CKPLUS_CSV_LABELS
from .classes import order_classes
from .dataset import PRIVATE_TEST, PUBLIC_TEST, TRAINING, USAGES, FaceDataset
from .images import resize_square

# fer2013.csv labels 0..6, as canonical names.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CSV_LABELS = {"fer2013-csv": FER2013_LABELS, "ckplus-csv": CKPLUS_CSV_LABELS}

_USAGE = {u.lower(): u for u in (TRAINING, PUBLIC_TEST, PRIVATE_TEST)}
_DEFAULT_PIXELS = 48 * 48


def usage_from_filename(file_name: str) -> str | None:
    """'Training_123.jpg' → 'Training' (likewise PublicTest_, PrivateTest_); None without that prefix."""
    prefix, sep, _ = file_name.partition("_")
    return _USAGE.get(prefix.lower()) if sep else None


@dataclass
class EmotionCsv:
    labels: np.ndarray  # label values as written in the file
    images: np.ndarray | None  # N×S×S uint8 (None when read with labels_only)
    usage: np.ndarray | None  # Training/PublicTest/PrivateTest, None without a Usage column
    rows: np.ndarray  # row number of each image, the header being row 1


def _fields(line: str) -> list[str]:
    return [f.strip().strip('"').strip() for f in line.rstrip("\r\n").split(",")]


def read_emotion_csv(path: Path, labels_only: bool = False) -> EmotionCsv:
    """Parse a CSV with columns emotion and pixels (required) and Usage (optional).

    Column order is free, names are case-insensitive, extra columns are ignored. Every row holds
    one square image (48×48 = 2304 space-separated values 0..255). Row numbers in errors count
    the header as row 1, as an editor or a spreadsheet shows them.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as lines:
            return _parse(lines, path, labels_only)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _parse(lines: Iterator[str], path: Path, labels_only: bool) -> EmotionCsv:
    header = _fields(next(lines, ""))
    columns = [c.lower() for c in header]
    for required in ("emotion", "pixels"):
        if required not in columns:
            found = ", ".join(c[:30] for c in header if c) or "none"
            raise DataError(f"{path}: missing column '{required}' (found columns: {found})")
    i_label, i_pixels = columns.index("emotion"), columns.index("pixels")
    i_usage = columns.index("usage") if "usage" in columns else None
    labels, usage, rows, images = [], [], [], []
    expected = 0
    for row, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        fields = _fields(line)
        if len(fields) != len(columns):
            raise DataError(f"{path}: row {row}: {len(fields)} fields, expected {len(columns)} "
                            f"({', '.join(header)})")
        try:
            labels.append(int(fields[i_label]))
        except ValueError:
            raise DataError(f"{path}: row {row}: label {fields[i_label]!r} is not an integer") from None
        if i_usage is not None:
            value = _USAGE.get(fields[i_usage].lower())
            if value is None:
                raise DataError(f"{path}: row {row}: Usage {fields[i_usage]!r} is not one of "
                                f"{', '.join(USAGES)}")
            usage.append(value)
        rows.append(row)
        if not labels_only:
            pixels = _pixels(fields[i_pixels], f"{path}: row {row}")
            if not expected:  # the first row sets the size when it is square, else 48×48 is expected
                expected = len(pixels) if _is_square(len(pixels)) else _DEFAULT_PIXELS
            if len(pixels) != expected:
                side = math.isqrt(expected)
                raise DataError(f"{path}: row {row}: {len(pixels)} pixels, "
                                f"expected {expected} ({side}×{side})")
            images.append(pixels)
    if not rows:
        raise DataError(f"{path}: no data rows under the header")
    side = math.isqrt(expected)
    return EmotionCsv(
        labels=np.array(labels, dtype=np.int64),
        images=None if labels_only else np.stack(images).reshape(-1, side, side),
        usage=np.array(usage) if i_usage is not None else None,
        rows=np.array(rows, dtype=np.int64),
    )


def _is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n


def _pixels(text: str, where: str) -> np.ndarray:
    try:
        values = np.fromstring(text, dtype=np.int32, sep=" ")
    except ValueError:
        bad = next((t for t in text.split() if not t.lstrip("+-").isdigit()), text[:20])
        raise DataError(f"{where}: non-numeric pixel value {bad!r}") from None
    if values.size and (values.min() < 0 or values.max() > 255):
        bad = values[(values < 0) | (values > 255)][0]
        raise DataError(f"{where}: pixel value {bad} outside 0..255")
    return values.astype(np.uint8)


def csv_format(path: Path, labels: np.ndarray) -> str:
    """"ckplus-csv" when the file name contains "ck" or a contempt label (7) occurs, else "fer2013-csv"."""
    return "ckplus-csv" if "ck" in path.name.lower() or bool((labels == 7).any()) else "fer2013-csv"


def load_csv(path: Path, format: str = "auto", image_size: int | None = None) -> FaceDataset:
    """A FER2013 (`fer2013.csv`, labels 0..6) or Kaggle CK+ (`ckextended.csv`, labels 0..7) CSV.

    Label orders: FER2013 0=angry 1=disgust 2=fear 3=happy 4=sad 5=surprise 6=neutral; CK+ the
    same plus 7=contempt (its file says anger/happiness/sadness). Classes absent from the file
    are left out of `class_names`.
    """
    table = read_emotion_csv(path)
    format = csv_format(path, table.labels) if format == "auto" else format
    names = CSV_LABELS[format]
    unknown = (table.labels < 0) | (table.labels >= len(names))
    if unknown.any():
        i = int(np.argmax(unknown))
        raise DataError(f"{path}: row {table.rows[i]}: unknown label {table.labels[i]} "
                        f"({format} labels are 0..{len(names) - 1}: {', '.join(names)})")
    class_names = order_classes(names[v] for v in np.unique(table.labels))
    to_label = np.array([class_names.index(n) if n in class_names else -1 for n in names], dtype=np.int64)
    images = table.images
    if image_size is not None and images.shape[1:] != (image_size, image_size):
        images = np.stack([resize_square(image, image_size) for image in images])
    return FaceDataset(
        images=images,
        labels=to_label[table.labels],
        class_names=class_names,
        usage=table.usage,
        sources=np.array([f"{path.name}:{row}" for row in table.rows]),
        name=f"{format}:{path}",
        meta={"format": format, "root": str(path), "skipped": []},
    )
