"""Seconds to load FER2013 (Kaggle folders) and CK+48: first load (decode + write cache), then cached.

    .venv/bin/python benchmarks/data_load.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ferkit.data import load_dataset

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def main() -> None:
    for name, path in (("FER2013", DATASETS / "fer2013"), ("CK+48", DATASETS / "ckplus" / "CK+48")):
        with tempfile.TemporaryDirectory() as cache:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                data = load_dataset(path, cache_dir=cache)
                times.append(time.perf_counter() - start)
        print(f"{name}: {len(data)} images; first load {times[0]:.2f} s, cached {min(times[1:]):.2f} s")


if __name__ == "__main__":
    main()
