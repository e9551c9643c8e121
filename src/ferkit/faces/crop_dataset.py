"""Turn a dataset of full photos into a dataset of face crops, as the original notebooks did before training.

    ferkit crop photos_by_class/ faces_by_class/ --size 48      # YuNet; --detector mtcnn for MTCNN

Every image under the source keeps its relative path (split and class folders included) and becomes
a size×size gray PNG of its largest face, framed as inference frames it (`ferkit.faces.framing`). Images
without a face are kept as a centre crop (or skipped with `skip_no_face`), and unreadable files are
skipped; both are counted in the returned statistics.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..atomic import write_bytes
from ..data import IMAGE_EXTENSIONS
from ..data.images import load_image
from ..errors import DataError, FerkitError
from . import DEFAULT_DETECTOR
from .crop import detect_and_crop
from .detector import Detector, create_detector
from .framing import Framing


@dataclass
class CropStats:
    images: int = 0
    faces: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def crop_dataset(source: str | Path, target: str | Path, detector: str | Detector = DEFAULT_DETECTOR,
                 size: int = 48,
                 framing: Framing | None = None, skip_no_face: bool = False,
                 progress: bool | None = None) -> CropStats:
    """Write the largest face of every image under `source` as a gray PNG crop under `target`.

    `framing` (default: FER2013's, the one `Recognizer` uses) decides how a face fills the crop.
    """
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise DataError(f"{source}: no such folder")
    if target.resolve() == source.resolve() or source.resolve() in target.resolve().parents:
        raise DataError(f"{target}: the output must not be inside the source folder")
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{source}: no images found")
    if isinstance(detector, str):
        detector = create_detector(detector)
    stats = CropStats()
    for path in tqdm(files, unit="image", disable=progress is False if progress is not None else None):
        rel = path.relative_to(source)
        try:
            rgb = load_image(path, mode="rgb")
        except FerkitError:
            stats.unreadable.append(str(rel))
            continue
        crops, found = detect_and_crop([rgb], detector, size=size, framing=framing)
        if not found[0]:
            stats.no_face.append(str(rel))
            if skip_no_face:
                continue
        buffer = io.BytesIO()
        Image.fromarray(crops[0]).save(buffer, format="PNG")
        write_bytes(target / rel.with_suffix(".png"), buffer.getvalue())
        stats.images += 1
        stats.faces += int(found[0])
    return stats
