"""Training: smoke run, resume = uninterrupted, extension, early stopping, schedules, EMA, distillation, splits."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ferkit.config import TrainConfig
from ferkit.data import load_dataset
from ferkit.data.splits import make_splits
from ferkit.errors import ConfigError, FerkitError
from ferkit.experiment import load_splits, resume_run, train_run
from ferkit.models.files import ModelInfo, save_model
from ferkit.train import distillation_loss, fit, scheduled_lr

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
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


@pytest.mark.parametrize("extras", ["plain", "ema+teacher"])
def test_resume_after_interrupt_equals_uninterrupted(fer2013_small, tmp_path, model_file, extras):
    options = {"ema_decay": 0.9, "teacher": str(model_file), "distill_weight": 0.5,
               "distill_temperature": 2.0} if extras != "plain" else {}
    cfg = TrainConfig(data=str(fer2013_small), epochs=3, **QUICK, **options)
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
    if options:
        ea, eb = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True)["ema"] for r in ("straight", "broken"))
        assert all(torch.equal(ea[k], eb[k]) for k in ea)


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


def test_ema_run_validates_and_saves_the_averaged_weights(fer2013_small, tmp_path, monkeypatch):
    import ferkit.train

    seen = []

    def record(model, *args, **kwargs):  # every epoch improves, so best.safetensors holds the last epoch's weights
        seen.append(model)
        return 1.0, 0.1 * len(seen)

    monkeypatch.setattr(ferkit.train, "evaluate_loss_acc", record)
    cfg = TrainConfig(data=str(fer2013_small), epochs=2, ema_decay=0.9, **QUICK)
    ferkit.train.fit(cfg, load_splits(cfg), tmp_path / "run", progress=False, log=quiet)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    best = load_file(str(tmp_path / "run" / "best.safetensors"))
    assert isinstance(seen[0], torch.nn.Module) and all(m is seen[0] for m in seen)
    assert int(state["ema"]["n_averaged"]) == 2 * math.ceil(7 * 30 / 32)  # one update per optimiser step
    for name, tensor in best.items():
        assert torch.equal(tensor, state["ema"]["module." + name]), name
    moved = [k for k in best if best[k].is_floating_point() and not torch.equal(best[k], state["model"][k])]
    assert moved, "the saved weights should be the average, not the last step's"


def test_distillation_loss_is_zero_for_the_teacher_itself_and_scaled_by_t_squared():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    assert distillation_loss(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p_t = torch.softmax(other / 2, 1)
    kl = (p_t * (p_t.log() - torch.log_softmax(logits / 2, 1))).sum(1).mean()
    assert distillation_loss(logits, other, 2.0).item() == pytest.approx(4 * kl.item(), rel=1e-5)


def test_distilling_from_a_teacher_pulls_the_model_towards_it(fer2013_small, tmp_path, model_file):
    """The same run with pure distillation (weight 1) agrees with the teacher far more than with labels only."""
    from ferkit.models import create_model
    from ferkit.models.classifier import Classifier

    images = load_dataset(fer2013_small).images[:300]
    teacher = Classifier.load(model_file, device="cpu").predict_proba(images).argmax(1)

    def agreement(weight: float) -> float:
        cfg = TrainConfig(data=str(fer2013_small), epochs=6, teacher=str(model_file), distill_weight=weight,
                          lr=3e-3, **QUICK)
        fit(cfg, load_splits(cfg), tmp_path / f"w{weight}", progress=False, log=quiet)
        state = torch.load(tmp_path / f"w{weight}" / "checkpoint.pt", weights_only=True)
        model = create_model("seed_cnn", num_classes=7)
        model.load_state_dict(state["model"])
        info = ModelInfo("seed_cnn", list(CLASSES), mean=state["mean"], std=state["std"])
        return float((Classifier(model, info, device="cpu").predict_proba(images).argmax(1) == teacher).mean())

    distilled, labels_only = agreement(1.0), agreement(0.0)
    assert distilled > labels_only + 0.2, (distilled, labels_only)


def test_teacher_must_match_the_classes_and_size(fer2013_small, tmp_path):
    from ferkit.models import create_model

    odd = save_model(tmp_path / "five.safetensors", create_model("seed_cnn", num_classes=5),
                     ModelInfo("seed_cnn", ["a", "b", "c", "d", "e"]))
    cfg = TrainConfig(data=str(fer2013_small), epochs=1, teacher=str(odd), **QUICK)
    with pytest.raises(ConfigError, match="teacher"):
        train_run(cfg, tmp_path / "run", progress=False, log=quiet)
    cfg = replace(cfg, teacher=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ConfigError, match="no such model file"):
        train_run(cfg, tmp_path / "run2", progress=False, log=quiet)
    lines = []
    fit(replace(cfg, teacher="default"), load_splits(cfg), tmp_path / "run3", progress=False, log=lines.append)
    assert "distilling from default" in lines[0]


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
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="distill"):
        TrainConfig(distill_weight=1.5)
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
