"""One-file packs of an image-folder dataset, to copy a dataset to another machine in one piece.

A pack is a compressed `.npz` holding every image file's encoded bytes (not decoded pixels) with its
path relative to the root, plus the folder list. FER2013's 35,887 files (142 MiB on disk) pack into
about 43 MiB: compression finds the headers the small JPEGs share, so the pack fits the 64 MiB a device
call carries beside the repository (scripts/gpu_recipe.sh). Uncompressed packs of earlier versions load too.
Reading a pack runs the same layout detection and decoding as reading the folder.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import DataError
from .dataset import FaceDataset
from .folders import find_layout, layout_dataset, scan_folder

PACK_VERSION = 1


def pack_folder(root: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write every image under `root` into the pack `out_path` (atomically); returns `out_path`.

    Refuses (DataError) a folder that `load_dataset` would refuse, so a pack always loads.
    """
    root, out_path = Path(root), Path(out_path)
    if not root.is_dir():
        raise DataError(f"{root}: {'is not a folder' if root.exists() else 'no such folder'}")
    entries, dirs = scan_folder(root)
    find_layout([e.rel for e in entries], dirs, str(root))
    blobs = []
    for entry in entries:
        try:
            blobs.append((root / entry.rel).read_bytes())
        except OSError as exc:
            raise DataError(f"{root / entry.rel}: cannot read ({exc.strerror or exc})") from exc
    with atomic_open(out_path) as handle:
        np.savez_compressed(
            handle,
            ferkit_pack=np.array(PACK_VERSION),
            paths=np.array([e.rel for e in entries], dtype=str),
            dirs=np.array(dirs, dtype=str),
            offsets=np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64),
            data=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        )
    return out_path


@dataclass
class Pack:
    path: Path
    files: list[str]
    dirs: list[str]
    offsets: np.ndarray
    data: np.ndarray

    def read(self, i: int) -> bytes:
        return self.data[self.offsets[i]:self.offsets[i + 1]].tobytes()

    def name(self, i: int) -> str:
        return f"{self.path}:{self.files[i]}"


def open_pack(path: Path) -> Pack:
    hint = "make one with ferkit.data.pack.pack_folder"
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: not a ferkit pack (a single array; {hint})")
        with archive:
            if "ferkit_pack" not in archive.files:
                raise DataError(f"{path}: not a ferkit pack (no 'ferkit_pack' entry; {hint})")
            if int(archive["ferkit_pack"]) != PACK_VERSION:
                raise DataError(f"{path}: pack version {int(archive['ferkit_pack'])}, "
                                f"this ferkit reads {PACK_VERSION}")
            pack = Pack(path, archive["paths"].tolist(), archive["dirs"].tolist(), archive["offsets"],
                        archive["data"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DataError(f"{path}: unreadable pack ({exc})") from exc
    if len(pack.offsets) != len(pack.files) + 1 or pack.offsets[-1] != len(pack.data):
        raise DataError(f"{path}: corrupt pack (file offsets do not match the data)")
    return pack


def read_pack(path: Path, format: str, image_size: int | None, strict: bool) -> FaceDataset:
    """The dataset the packed folder holds; `format` is "auto" or one of the folder formats."""
    pack = open_pack(path)
    layout = find_layout(pack.files, pack.dirs, str(path), format)
    index = {rel: i for i, rel in enumerate(pack.files)}
    order = [index[rel] for rel in layout.files]

    def read(i: int) -> bytes:
        return pack.read(order[i])

    def name(i: int) -> str:
        return pack.name(order[i])

    data = layout_dataset(layout, read, name, str(path), image_size, strict)
    data.meta["pack"] = True
    return data
