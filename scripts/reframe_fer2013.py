"""FER2013 (Kaggle folders) with every frame cut again by ferkit's inference path, for training on it.

    .venv/bin/python scripts/reframe_fer2013.py ../shared/datasets/fer2013 ../fer2013-reframed

Each 48×48 frame is shown 4× larger with a frame of context around it (as `benchmarks/face_framing.py`
does to measure the framing), YuNet finds the face, and the landmark framing cuts it, exactly as
`Recognizer` cuts a face in a photo. So a model trained on the result sees faces framed as it will see
them in photos. A frame where YuNet finds no face is kept as it was (the count is printed). File names and
folders stay those of the source (`train/<class>/Training_….jpg`), so FER2013's splits and FER+'s
labels (`--ferplus`) still apply; the crops are written as JPEG at quality 100. Two processes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from face_framing import upscaled  # noqa: E402

from ferkit.faces import Framing, create_detector, crop_faces  # noqa: E402

_detector = None


def _reframe(job: tuple[Path, Path]) -> bool | None:
    """Write `source` re-framed to `target`; False (and a plain copy) when no face is found, None (and
    nothing written) when the file cannot be read as an image."""
    global _detector
    if _detector is None:
        _detector = create_detector("yunet")
    source, target = job
    target.parent.mkdir(parents=True, exist_ok=True)
    gray = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return None
    shown = upscaled(gray)
    found = [d for d in _detector.detect(shown) if d.landmarks is not None]
    if not found:
        shutil.copyfile(source, target)
        return False
    largest = max(found, key=lambda d: d.area)
    crop = crop_faces(shown, [largest], size=gray.shape[0], framing=Framing())[0]
    cv2.imwrite(str(target), np.asarray(crop), [cv2.IMWRITE_JPEG_QUALITY, 100])
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args()
    source, target = Path(args.source), Path(args.target)
    files = sorted(source.rglob("*.jpg"))
    if not files:
        print(f"reframe_fer2013: error: {source}: no .jpg files", file=sys.stderr)
        sys.exit(2)
    jobs = [(path, target / path.relative_to(source)) for path in files]
    with Pool(2) as pool:
        found = pool.map(_reframe, jobs, chunksize=256)
    reframed, kept = found.count(True), found.count(False)
    unreadable = [str(path) for path, ok in zip(files, found) if ok is None]
    listed = f": {', '.join(unreadable[:5])}" if unreadable else ""
    print(f"{len(files)} frames; re-framed {reframed}, kept as they were (no face found) {kept}, "
          f"unreadable (left out) {len(unreadable)}{listed}")


if __name__ == "__main__":
    main()
