"""Shared fixtures: the read-only datasets in ../shared/datasets (or $FERKIT_DATASETS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, os.cpu_count() or 1))

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))


def _require(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared dataset missing in CI: {path}")
        pytest.skip(f"shared dataset not found: {path} (set FERKIT_DATASETS)")
    return path


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    return _require(DATASETS)


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    return _require(DATASETS / "fer2013")


@pytest.fixture(scope="session")
def ckplus_dir() -> Path:
    return _require(DATASETS / "ckplus" / "CK+48")


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    return _require(DATASETS / "photos")


def make_small_fer2013(src: Path, dst: Path, per_class: int) -> Path:
    """A FER2013 Kaggle-layout copy (symlinks) with `per_class` images per class and usage."""
    for split, prefixes in (("train", ("Training_",)), ("test", ("PublicTest_", "PrivateTest_"))):
        for class_dir in sorted((src / split).iterdir()):
            files = sorted(p.name for p in class_dir.iterdir())
            out = dst / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for prefix in prefixes:
                for name in [f for f in files if f.startswith(prefix)][:per_class]:
                    (out / name).symlink_to(class_dir / name)
    return dst


@pytest.fixture(scope="session")
def fer2013_small(fer2013_dir: Path, tmp_path_factory) -> Path:
    """FER2013 layout with 30 images per class and usage (630 images): real data, quick to train on."""
    return make_small_fer2013(fer2013_dir, tmp_path_factory.mktemp("fer2013_small"), per_class=30)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never touch the user's ~/.cache/ferkit."""
    os.environ["FERKIT_CACHE"] = str(tmp_path_factory.mktemp("ferkit_cache"))


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """An untrained seed_cnn with random BN statistics: structure tests need no accuracy."""
    from ferkit.models import create_model
    from ferkit.models.files import ModelInfo, save_model

    torch.manual_seed(0)
    model = create_model("seed_cnn", num_classes=7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    return save_model(tmp_path_factory.mktemp("model") / "m.safetensors", model.eval(),
                      ModelInfo("seed_cnn", classes, mean=0.5, std=0.25))


@pytest.fixture(scope="module")
def engine():
    """The service's worker pool (2 workers; the test process's threads left alone), for the serve tests."""
    from ferkit.serve import Engine, EngineConfig

    engine = Engine(EngineConfig(workers=2, threads_per_worker=None))
    yield engine
    engine.close()


CKPLUS_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]


def make_grouped_faces(subjects: int = 9, classes: list[str] | None = None, per_class: int = 2,
                       size: int = 16, seed: int = 0):
    """A tiny CK+-like FaceDataset: every subject has `per_class` noisy images of every class, each class
    its own brightness, groups "S001", "S002", …"""
    import numpy as np

    from ferkit.data import FaceDataset

    classes = classes or CKPLUS_CLASSES
    rng = np.random.default_rng(seed)
    labels = np.tile(np.repeat(np.arange(len(classes)), per_class), subjects)
    groups = np.repeat([f"S{s + 1:03d}" for s in range(subjects)], len(classes) * per_class)
    base = (40 + 200 * labels / max(1, len(classes) - 1))[:, None, None]
    images = np.clip(base + rng.normal(0, 20, (len(labels), size, size)), 0, 255).astype(np.uint8)
    return FaceDataset(images, labels.astype(np.int64), list(classes), groups=groups.astype(object),
                       name="grouped-faces")
