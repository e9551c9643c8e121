"""Decoded datasets cached as `.npz`: the second load of FER2013 reads one file instead of 36k JPEGs.

A cache file is keyed by the source's absolute path, the format and image size asked for, and a
cheap fingerprint of the source (every file's relative path, mtime and size; or the CSV/pack
file's mtime and size), so editing, adding or removing an image rebuilds it. Older cache files of
the same source are removed when a new one is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import OutputError
from .dataset import FaceDataset
from .folders import FileEntry

CACHE_VERSION = 1  # bump when decoding changes, so stale arrays are never served


def default_cache_dir() -> Path:
    """$FERKIT_CACHE, else ~/.cache/ferkit."""
    return Path(os.environ.get("FERKIT_CACHE") or Path.home() / ".cache" / "ferkit")


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def folder_fingerprint(entries: Iterable[FileEntry]) -> str:
    lines = "\n".join(f"{e.rel}\t{e.mtime_ns}\t{e.size}" for e in entries)
    return hashlib.sha256(lines.encode()).hexdigest()


def file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def cache_file(cache_dir: Path, source: Path, format: str, image_size: int | None, fingerprint: str) -> Path:
    slot = _digest(str(source), format, image_size)[:12]
    key = _digest(slot, fingerprint, CACHE_VERSION)[:16]
    label = re.sub(r"[^A-Za-z0-9._+-]", "_", source.name)[:40] or "data"
    return Path(cache_dir) / f"{label}-{slot}-{key}.npz"


def load_cached(path: Path) -> FaceDataset | None:
    """The cached dataset, or None when there is none or it cannot be read (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                return None
            optional = {k: z[k] if k in z.files else None for k in ("usage", "groups", "sources")}
            return FaceDataset(
                images=z["images"], labels=z["labels"], class_names=z["class_names"].tolist(),
                name=str(z["name"]), meta=json.loads(str(z["meta"])), **optional,
            )
    except Exception:  # any damage (truncated zip, bad member, wrong shapes) means: rebuild
        return None


def save_cached(path: Path, data: FaceDataset) -> None:
    """Write atomically; a cache that cannot be written only costs speed, so it warns."""
    arrays = {
        "version": np.array(CACHE_VERSION), "images": data.images, "labels": data.labels,
        "class_names": np.array(data.class_names, dtype=str), "name": np.array(data.name),
        "meta": np.array(json.dumps(data.meta)),
    }
    for key in ("usage", "groups", "sources"):
        if getattr(data, key) is not None:
            arrays[key] = np.asarray(getattr(data, key), dtype=str)
    try:
        with atomic_open(path) as handle:
            np.savez(handle, **arrays)
    except OutputError as exc:
        warnings.warn(f"dataset cache not written: {exc}", stacklevel=3)
        return
    slot = path.name.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{slot}-*.npz"):
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()
