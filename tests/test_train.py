"""Training: smoke run, resume = uninterrupted, extension, early stopping, schedules, splits."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ferkit.data import load_dataset
from ferkit.errors import ConfigError, FerkitError
from ferkit.experiment import load_splits, resume_run, train_run
from ferkit.train import TrainConfig, make_splits, scheduled_lr

QUICK = dict(model="seed_cnn", batch_size=32, precision="fp32", threads=2, seed=3)


def quiet(_: str) -> None:
    pass


def test_smoke_run_writes_everything(fer2013_small, tmp_path):
    cfg = TrainConfig(data=str(fer2013_small), epochs=1, **QUICK)
    summary = train_run(cfg, tmp_path / "run", progress=False, log=quiet)
    run = tmp_path / "run"
    for name in ("config.json", "splits.json", "history.json", "checkpoint.pt", "best.safetensors", "best.json",
                 "metrics.json", "report.txt"):
        assert (run / name).stat().st_size > 0, name
    for png in ("curves", "class_distribution", "confusion_test", "confusion_test_normalised", "samples_test"):
        data = (run / "plots" / f"{png}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, png
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["images"] == 7 * 30  # PrivateTest only
    assert metrics["val"]["images"] == 7 * 30  # PublicTest only
    assert 0.0 <= summary["test_acc"] <= 1.0
    splits = json.loads((run / "splits.json").read_text())
    assert "PublicTest" in splits["description"] and splits["train"]["size"] == 7 * 30
    assert "PrivateTest" in (run / "report.txt").read_text() or "test: accuracy" in (run / "report.txt").read_text()


def _weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def test_resume_after_interrupt_equals_uninterrupted(fer2013_small, tmp_path):
    cfg = TrainConfig(data=str(fer2013_small), epochs=3, **QUICK)
    train_run(cfg, tmp_path / "straight", progress=False, log=quiet)

    def stop_after_epoch_two(line: str) -> None:
        if line.startswith("epoch   2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "broken", progress=False, log=stop_after_epoch_two)
    assert len(json.loads((tmp_path / "broken" / "history.json").read_text())) == 2
    resume_run(tmp_path / "broken", progress=False, log=quiet)

    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    resumed = json.loads((tmp_path / "broken" / "history.json").read_text())
    assert [h["epoch"] for h in resumed] == [1, 2, 3]
    for a, b in zip(straight, resumed):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    wa, wb = _weights(tmp_path / "straight"), _weights(tmp_path / "broken")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_extend_finished_run_with_new_learning_rate(fer2013_small, tmp_path):
    cfg = TrainConfig(data=str(fer2013_small), epochs=2, **QUICK)
    train_run(cfg, tmp_path / "run", progress=False, log=quiet)
    resume_run(tmp_path / "run", epochs=3, lr=1e-4, progress=False, log=quiet)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[2]["lr"] == pytest.approx(1e-4)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 3
    with pytest.raises(ConfigError):
        resume_run(tmp_path / "run", epochs=2, log=quiet)


def test_early_stopping_stops(fer2013_small, tmp_path, monkeypatch):
    import ferkit.train

    val_accs = iter([0.30, 0.40, 0.40, 0.39, 0.50, 0.60])  # best at epoch 2, then two epochs without gain
    monkeypatch.setattr(ferkit.train, "evaluate_loss_acc", lambda *a, **k: (1.0, next(val_accs)))
    cfg = TrainConfig(data=str(fer2013_small), epochs=6, early_stopping=2, **QUICK)
    summary = ferkit.train.fit(cfg, load_splits(cfg), tmp_path / "run", progress=False, log=quiet)
    assert summary["epochs"] == 4 and summary["best_epoch"] == 2


def test_best_model_file_matches_best_epoch(fer2013_small, tmp_path):
    cfg = TrainConfig(data=str(fer2013_small), epochs=2, **QUICK)
    summary = train_run(cfg, tmp_path / "run", progress=False, log=quiet)
    info = json.loads((tmp_path / "run" / "best.json").read_text())
    assert info["metrics"]["epoch"] == summary["best_epoch"]
    assert info["class_names"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert set(load_file(str(tmp_path / "run" / "best.safetensors"))) == set(_weights(tmp_path / "run"))


def test_cosine_schedule_with_warmup_and_extension_phase():
    cfg = TrainConfig(lr=1e-3, warmup_epochs=2, min_lr=1e-5)
    phase = {"start": 0, "end": 10, "lr": 1e-3}
    lrs = [scheduled_lr(cfg, e, phase) for e in range(10)]
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))
    assert lrs[-1] > cfg.min_lr
    extension = {"start": 10, "end": 15, "lr": 2e-4}
    assert scheduled_lr(cfg, 10, extension) == pytest.approx(2e-4)  # no warm-up in an extension
    assert scheduled_lr(replace(cfg, scheduler="none"), 7, phase) == 1e-3


def test_bad_config_is_refused():
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(FerkitError):
        train_run(TrainConfig(data=""), "unused", log=quiet)


def test_splits_fer2013_use_official_usages(fer2013_small):
    splits = make_splits(load_dataset(fer2013_small))
    assert set(splits.train.usage) == {"Training"}
    assert set(splits.val.usage) == {"PublicTest"}
    assert set(splits.test.usage) == {"PrivateTest"}


def test_splits_ckplus_are_subject_independent(ckplus_dir):
    data = load_dataset(ckplus_dir)
    splits = make_splits(data, val_fraction=0.1, test_fraction=0.2, seed=0)
    groups = [set(s.groups) for s in (splits.train, splits.val, splits.test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(data)
    assert 0.1 < len(splits.test) / len(data) < 0.3


def test_splits_train_validation_folders(fer2013_small, tmp_path):
    root = tmp_path / "images"
    for src_split, dst_split in (("train", "train"), ("test", "validation")):
        for class_dir in (fer2013_small / src_split).iterdir():
            (root / dst_split / class_dir.name).mkdir(parents=True)
            for f in class_dir.iterdir():
                (root / dst_split / class_dir.name / f.name).symlink_to(f.resolve())
    splits = make_splits(load_dataset(root), val_fraction=0.2)
    assert set(splits.test.usage) == {"validation"}
    assert len(splits.test) == 7 * 60
    assert len(splits.train) + len(splits.val) == 7 * 30
    assert np.intersect1d(splits.train.sources, splits.val.sources).size == 0
