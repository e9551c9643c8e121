"""Folder-per-class datasets: any `<root>[/<split>]/<class>/` tree, FER2013's Kaggle jpgs, CK+48.

Layout detection works on relative paths only, so a folder on disk and a `.npz` pack of it
(see `pack.py`) are read by the same code and give the same dataset.
"""

from __future__ import annotations

import os
import posixpath
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError, ImageError
from .ckplus import subject_of
from .classes import canonical_name, order_classes
from .dataset import TEST, TRAIN, VALIDATION, FaceDataset
from .fer2013 import usage_from_filename
from .images import MAX_PIXELS, load_image, resize_square

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
FOLDER_FORMATS = ("fer2013-folders", "ckplus", "folders")
SPLIT_FOLDERS = {"train": TRAIN, "training": TRAIN, "val": VALIDATION, "valid": VALIDATION,
                 "validation": VALIDATION, "test": TEST}
DEFAULT_SIZE = 48  # mixed-size folders are resized to this when no image_size is given
_CHUNK = 256


# ---------------------------------------------------------------- listing

@dataclass(frozen=True)
class FileEntry:
    rel: str  # path relative to the root, with "/" separators
    mtime_ns: int
    size: int


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_folder(root: Path) -> tuple[list[FileEntry], list[str]]:
    """Every image file and every folder under `root` (relative, sorted); hidden entries are skipped."""
    files, dirs, seen, todo = [], [], set(), [""]
    while todo:
        rel = todo.pop()
        folder = root / rel
        try:
            stat = folder.stat()
            if (stat.st_dev, stat.st_ino) in seen:  # a symlink loop
                continue
            seen.add((stat.st_dev, stat.st_ino))
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            raise DataError(f"{folder}: cannot read folder ({exc.strerror or exc})") from exc
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__MACOSX":
                continue
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir():
                dirs.append(child)
                todo.append(child)
            elif is_image_name(entry.name) and entry.is_file():
                stat = entry.stat()
                files.append(FileEntry(child, stat.st_mtime_ns, stat.st_size))
    files.sort(key=lambda e: e.rel)
    return files, sorted(dirs)


# ---------------------------------------------------------------- layout

@dataclass
class Layout:
    format: str  # one of FOLDER_FORMATS
    files: list[str]  # relative paths of the images, sorted
    classes: list[str]  # class folder name of each image
    usage: list[str] | None
    groups: list[str] | None


def _children(files: Iterable[str], dirs: Iterable[str]) -> tuple[dict[str, set[str]], set[str]]:
    """Sub-folder names of every folder, and the folders that hold files directly."""
    children: dict[str, set[str]] = defaultdict(set)
    holders = {posixpath.dirname(f) for f in files}
    for path in [*dirs, *holders]:
        while path:
            parent, name = posixpath.split(path)
            children[parent].add(name)
            path = parent
    return children, holders


def find_layout(files: Sequence[str], dirs: Iterable[str], where: str, format: str = "auto") -> Layout:
    """Class (and split) of every image from the folder structure; `where` names the root in errors.

    Accepts `<root>/<class>/...` and `<root>/<split>/<class>/...` (split folders train/training,
    val/valid/validation, test, any case). A root holding nothing but one folder is looked
    through (`data/` → `data/images/train/...`). Images deeper inside a class folder belong to
    that class; images outside class folders are ignored.
    """
    children, holders = _children(files, dirs)
    base = ""
    while base not in holders and len(children[base]) == 1:
        only = next(iter(children[base]))
        if only.lower() in SPLIT_FOLDERS:
            break
        base = posixpath.join(base, only)
    top = sorted(children[base])
    splits = [d for d in top if d.lower() in SPLIT_FOLDERS]
    if not top:
        found = (f"{sum(1 for f in files if posixpath.dirname(f) == base)} images but "
                 if base in holders else "")
        raise DataError(f"{where}: {found}no class folders; expected <root>/<class>/<images> "
                        "or <root>/<split>/<class>/<images>")
    if splits and len(splits) != len(top):
        others = ", ".join(d for d in top if d not in splits)
        raise DataError(f"{where}: mixes split folders ({', '.join(splits)}) with other folders ({others})")
    if not files:
        raise DataError(f"{where}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                        "in any class folder")

    prefix = f"{base}/" if base else ""
    class_dirs = {s: sorted(children[prefix + s]) for s in splits} if splits else {None: top}
    _check_classes(class_dirs, where, prefix)
    picked, classes, split_of = [], [], []
    depth = 3 if splits else 2
    for f in files:
        parts = f[len(prefix):].split("/") if f.startswith(prefix) else []
        if len(parts) >= depth:
            picked.append(f)
            split_of.append(parts[0] if splits else None)
            classes.append(parts[depth - 2])
    filled = set(zip(split_of, classes, strict=True))
    for split, names in class_dirs.items():
        for name in names:
            if (split, name) not in filled:
                folder = "/".join(p for p in (base, split, name) if p)
                raise DataError(f"{where}/{folder}: class folder has no images")
    split_usage = [SPLIT_FOLDERS[s.lower()] for s in split_of] if splits else None
    return _with_format(Layout("folders", picked, classes, split_usage, None), where, format)


def _check_classes(class_dirs: dict[str | None, list[str]], where: str, prefix: str) -> None:
    for split, names in class_dirs.items():
        folder = f"{where}/{prefix}{split}" if split else where
        if not names:
            raise DataError(f"{folder}: no class folders")
        by_class: dict[str, list[str]] = defaultdict(list)
        for name in names:
            by_class[canonical_name(name)].append(name)
        for canonical, same in by_class.items():
            if len(same) > 1:
                raise DataError(f"{folder}: folders {', '.join(same)} are all class '{canonical}'")
    present = {split: {canonical_name(n) for n in names} for split, names in class_dirs.items()}
    every = set().union(*present.values())
    missing = [f"{split} lacks {', '.join(order_classes(every - have))}"
               for split, have in present.items() if have != every]
    if missing:
        raise DataError(f"{where}: class folders differ between splits: {'; '.join(missing)}")


def _with_format(layout: Layout, where: str, format: str) -> Layout:
    names = [posixpath.basename(f) for f in layout.files]
    fer_usage = [usage_from_filename(n) for n in names]
    subjects = [subject_of(n) for n in names]
    if format == "auto":
        # The Kaggle layout has train/ and test/ only: FER2013 files regrouped into other split
        # folders (train/ + validation/) keep the user's split.
        if all(fer_usage) and set(layout.usage or ()) <= {TRAIN, TEST}:
            format = "fer2013-folders"
        elif layout.usage is None and all(subjects):
            format = "ckplus"
        else:
            format = "folders"
    if format == "fer2013-folders":
        if not all(fer_usage):
            bad = layout.files[fer_usage.index(None)]
            raise DataError(f"{where}/{bad}: no Training_/PublicTest_/PrivateTest_ prefix, "
                            "so not the FER2013 jpg layout (read it as format 'folders')")
        layout.usage = fer_usage
    elif format == "ckplus":
        if not all(subjects):
            bad = layout.files[subjects.index(None)]
            raise DataError(f"{where}/{bad}: not a CK+ name S<subject>_<sequence>_<frame> "
                            "(read it as format 'folders')")
        layout.groups = subjects
    layout.format = format
    return layout


# ---------------------------------------------------------------- decoding

def _jpeg_pixels(data: bytes) -> int:
    """Width × height as a JPEG's frame header (SOFn) states it; 0 if there is none."""
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return height * width
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            i += 2
        else:
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return 0


def decode_gray(data: bytes, name: str) -> np.ndarray:
    """Decode to uint8 gray: OpenCV for JPEG (fast, and it releases the GIL), `load_image` (Pillow) for
    everything else, so alpha, 16-bit and odd formats come out right.

    A JPEG whose header claims more than MAX_PIXELS goes to Pillow too, which refuses it in one line
    (OpenCV would allocate up to a gigapixel, or raise). PNGs always go to Pillow: libpng, inside
    OpenCV, prints its complaints about a damaged file straight to stderr.
    """
    if data[:3] == b"\xff\xd8\xff" and _jpeg_pixels(data) <= MAX_PIXELS:
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        except cv2.error:  # OpenCV's own size limit: Pillow below says what is wrong
            image = None
        if image is not None:
            return image
    if not data:
        raise ImageError(f"{name}: file is empty (0 bytes)")
    return load_image(data, mode="gray", name=name)


def _decode_one(i: int, read: Callable[[int], bytes], name: Callable[[int], str]) -> np.ndarray | str:
    """The image, or the reason it cannot be read."""
    try:
        return decode_gray(read(i), name(i))
    except ImageError as exc:
        return str(exc)
    except OSError as exc:
        return f"{name(i)}: cannot read ({exc.strerror or exc})"


def _first_shape(count: int, read: Callable[[int], bytes], name: Callable[[int], str]) -> tuple | None:
    for i in range(count):
        image = _decode_one(i, read, name)
        if not isinstance(image, str):
            return image.shape
    return None


def decode_all(
    count: int, read: Callable[[int], bytes], name: Callable[[int], str], image_size: int | None, strict: bool
) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode images 0..count-1 on a thread pool; returns images N×H×W, indices kept, skip messages.

    image_size None keeps the native size when every image has the size of the first readable
    one, otherwise resizes all to DEFAULT_SIZE (the odd ones already in the workers, so a folder
    of large photos never sits in memory at full size).
    """
    keep = (image_size, image_size) if image_size else _first_shape(count, read, name)
    fallback = image_size or DEFAULT_SIZE

    def chunk(start: int) -> list[np.ndarray | str]:
        out = [_decode_one(i, read, name) for i in range(start, min(start + _CHUNK, count))]
        return [r if isinstance(r, str) or r.shape == keep else resize_square(r, fallback) for r in out]

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = [r for part in pool.map(chunk, range(0, count, _CHUNK)) for r in part]
    images, kept, skipped = [], [], []
    for i, result in enumerate(results):
        if isinstance(result, str):
            if strict:
                raise ImageError(result)
            skipped.append(result)
        else:
            images.append(result)
            kept.append(i)
    if not images:
        raise DataError(f"no readable images ({len(skipped)} unreadable, first: {skipped[0]})")
    if any(image.shape != keep for image in images):
        images = [resize_square(image, fallback) for image in images]
    return np.stack(images), kept, skipped


def layout_dataset(
    layout: Layout, read: Callable[[int], bytes], name: Callable[[int], str], where: str,
    image_size: int | None, strict: bool,
) -> FaceDataset:
    """Decode the images of `layout`; unreadable ones are skipped (or raise with `strict`)."""
    class_names = order_classes(layout.classes)
    label_of = {n: i for i, n in enumerate(class_names)}
    labels = np.array([label_of[canonical_name(c)] for c in layout.classes], dtype=np.int64)
    images, kept, skipped = decode_all(len(layout.files), read, name, image_size, strict)

    def take(values: list[str] | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values)[kept]

    return FaceDataset(
        images=images,
        labels=labels[kept],
        class_names=class_names,
        usage=take(layout.usage),
        groups=take(layout.groups),
        sources=take(layout.files),
        name=f"{layout.format}:{where}",
        meta={"format": layout.format, "root": where, "skipped": skipped},
    )


def read_folder(root: Path, layout: Layout, image_size: int | None, strict: bool) -> FaceDataset:
    paths = [os.path.join(root, rel) for rel in layout.files]

    def read(i: int) -> bytes:
        with open(paths[i], "rb") as handle:
            return handle.read()

    return layout_dataset(layout, read, paths.__getitem__, str(root), image_size, strict)
