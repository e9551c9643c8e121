"""Training: the trainer's steps, state and callbacks; smoke run, resume = uninterrupted, extension, early
stopping, schedules, EMA, distillation, splits."""

from __future__ import annotations

import copy
import json
import math
import resource
import subprocess
import sys
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ferkit.augment import AugmentConfig
from ferkit.config import TrainConfig
from ferkit.data import load_dataset
from ferkit.data.dataset import FaceDataset
from ferkit.data.splits import make_splits
from ferkit.errors import ConfigError, FerkitError
from ferkit.experiment import load_splits, resume_run, train_run
from ferkit.models.classifier import prepare_input
from ferkit.models.files import ModelInfo, read_temperature, save_model
from ferkit.train import TrainingInterrupted, distillation_loss, fit, scheduled_lr
from ferkit.training import Callback, Checkpointing, EpochLog, Trainer, heap

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
QUICK = dict(model="seed_cnn", batch_size=32, precision="fp32", threads=2, seed=3)


def quiet(_: str) -> None:
    pass


def test_smoke_run_writes_everything(fer2013_small, tmp_path):
    cfg = TrainConfig(data=str(fer2013_small), epochs=1, **QUICK)
    summary = train_run(cfg, tmp_path / "run", progress=False, log=quiet)
    run = tmp_path / "run"
    for name in ("config.json", "splits.json", "history.json", "checkpoint.pt", "best.safetensors",
                 "best.json", "metrics.json", "report.txt"):
        assert (run / name).stat().st_size > 0, name
    for png in ("curves", "class_distribution", "confusion_test", "confusion_test_normalised",
                "samples_test", "reliability_test"):
        data = (run / "plots" / f"{png}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, png
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["images"] == 7 * 30  # PrivateTest only
    assert metrics["val"]["images"] == 7 * 30  # PublicTest only
    assert 0.0 <= summary["test_acc"] <= 1.0
    calibration = metrics["calibration"]  # fitted on the validation split, stored with the weights
    assert calibration["split"] == "val (PublicTest)" and calibration["images"] == 7 * 30
    assert read_temperature(run / "best.safetensors") == calibration["temperature"] == summary["temperature"]
    assert calibration["nll_after"] <= calibration["nll_before"] and "ece" in metrics["test"]
    splits = json.loads((run / "splits.json").read_text())
    assert "PublicTest" in splits["description"] and splits["train"]["size"] == 7 * 30
    assert ("PrivateTest" in (run / "report.txt").read_text()
            or "test: accuracy" in (run / "report.txt").read_text())


# ---------------------------------------------------------------- the trainer on its own

def _faces(n: int, seed: int) -> FaceDataset:
    rng = np.random.default_rng(seed)
    return FaceDataset(images=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
                       labels=rng.integers(0, len(CLASSES), n), class_names=list(CLASSES))


def _trainer(callbacks=(), **options) -> Trainer:
    """seed_cnn on 64 random faces (two batches of 32), validated on 32 others."""
    cfg = TrainConfig(**{**QUICK, "device": "cpu", "epochs": 2, **options})
    return Trainer(cfg, _faces(64, seed=0), _faces(32, seed=1), callbacks, progress=False)


def _next_draws(trainer: Trainer) -> list[torch.Tensor]:
    """What the trainer's random generators give next: batch order, augmentation, torch's global RNGs."""
    order = trainer.batch_order(trainer.epoch)
    augment = partial(trainer.augment, generator=trainer.augment_generator)
    augmented = prepare_input(trainer.train_images[order[:8]], trainer.mean, trainer.std, trainer.device,
                              channels_last=False, augment=augment)
    return [order, augmented, torch.rand(4), torch.rand(4, device=trainer.device)]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_trainer_state_holds_every_random_generator(device):
    options = {"device": device, "augment": AugmentConfig(erasing=0.5)}
    trainer = _trainer(**options)
    trainer.train_one_epoch(0)  # every generator has moved on from its seed
    state = copy.deepcopy(trainer.state_dict())
    if device == "cpu":  # one CPU generator draws batch order and augmentation
        assert trainer.augment_generator is trainer.generator
        assert {"generator", "torch_rng"} <= state.keys()
    else:  # augmentation draws on the GPU from a generator of its own, not from the global (unsaved) one
        assert trainer.augment_generator.device.type == "cuda"
        assert {"generator", "torch_rng", "augment_generator", "cuda_rng"} <= state.keys()
    expected = _next_draws(trainer)

    fresh = _trainer(**options, seed=99)
    assert not torch.equal(_next_draws(fresh)[0], expected[0])
    fresh.load_state_dict(state)
    for a, b in zip(expected, _next_draws(fresh), strict=True):
        assert torch.equal(a, b)


def test_train_step_updates_the_weights_and_lowers_the_loss():
    still = AugmentConfig(rotation=0, width_shift=0, height_shift=0, zoom=0, horizontal_flip=False)
    trainer = _trainer(augment=still)
    images, labels = trainer.train_images[:16], trainer.train_labels[:16]
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    losses = [trainer.train_step(images, labels)[0].item() for _ in range(8)]
    assert losses[-1] < losses[0] * 0.8, losses
    after = trainer.model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith(".weight"))


class Recorder(Callback):
    def __init__(self, name: str, events: list) -> None:
        self.name, self.events = name, events

    def setup(self, trainer):
        self.events.append((self.name, "setup"))

    def on_train_start(self, trainer):
        self.events.append((self.name, "train_start"))

    def on_epoch_start(self, trainer, epoch):
        self.events.append((self.name, "epoch_start", epoch))

    def on_step_end(self, trainer, step):
        self.events.append((self.name, "step_end", step))

    def on_epoch_end(self, trainer, row):
        self.events.append((self.name, "epoch_end", row["epoch"], trainer.history[-1] is row))

    def on_train_end(self, trainer):
        self.events.append((self.name, "train_end"))


def test_callbacks_are_called_in_order():
    events = []
    _trainer([Recorder("a", events), Recorder("b", events)]).run()
    expected = [("a", "setup"), ("b", "setup"), ("a", "train_start"), ("b", "train_start")]
    for epoch in range(2):
        expected += [("a", "epoch_start", epoch), ("b", "epoch_start", epoch)]
        for step in range(2):
            expected += [("a", "step_end", step), ("b", "step_end", step)]
        expected += [("a", "epoch_end", epoch + 1, True), ("b", "epoch_end", epoch + 1, True)]
    assert events == expected + [("a", "train_end"), ("b", "train_end")]


def test_a_callback_stops_the_run_and_only_the_writer_writes(tmp_path):
    class Stop(Callback):
        def on_epoch_end(self, trainer, row):
            trainer.should_stop = True

    class Reader(Trainer):  # what every process but one is in distributed training
        is_writer = False

    lines = []
    callbacks = [Checkpointing(tmp_path / "quiet", {"config.json": {}}), EpochLog(lines.append), Stop()]
    reader = Reader(TrainConfig(**QUICK, epochs=3), _faces(64, 0), _faces(32, 1), callbacks, progress=False)
    reader.run()
    assert reader.epoch == 1 and not lines and not (tmp_path / "quiet").exists()
    writer = _trainer([Checkpointing(tmp_path / "run", {"config.json": {}}), EpochLog(lines.append), Stop()])
    writer.run()
    assert writer.epoch == 1 and lines[0].startswith("epoch   1/2  lr 1.00e-03  loss ")
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"config.json", "checkpoint.pt", "history.json",
                                                               "best.safetensors", "best.json"}


def _weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.parametrize("extras", ["plain", "ema+teacher", "ferplus-votes"])
def test_resume_after_interrupt_equals_uninterrupted(fer2013_small, tmp_path, model_file, extras,
                                                     monkeypatch, datasets_dir):
    options = {"plain": {},
               "ema+teacher": {"ema_decay": 0.9, "teacher": str(model_file), "distill_weight": 0.5,
                               "distill_temperature": 2.0},
               "ferplus-votes": {"labels": "ferplus-votes", "ferplus": str(datasets_dir / "ferplus"),
                                 "soft_label_weight": 0.7}}[extras]
    cfg = TrainConfig(data=str(fer2013_small), epochs=3, **QUICK, **options)
    train_run(cfg, tmp_path / "straight", progress=False, log=quiet)

    train_step = Trainer.train_step

    def ctrl_c_in_epoch_three(trainer, images, labels):
        if trainer.epoch == 2:
            raise KeyboardInterrupt
        return train_step(trainer, images, labels)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_step", ctrl_c_in_epoch_three)
        with pytest.raises(TrainingInterrupted, match="during epoch 3; the checkpoint holds 2 finished"):
            train_run(cfg, tmp_path / "broken", progress=False, log=quiet)
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
    if "ema_decay" in options:
        ea, eb = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True)["ema"]
                  for r in ("straight", "broken"))
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
    val_accs = iter([0.30, 0.40, 0.40, 0.39, 0.50, 0.60])  # best at epoch 2, then two epochs without gain
    monkeypatch.setattr(Trainer, "validate", lambda trainer: (1.0, next(val_accs)))
    cfg = TrainConfig(data=str(fer2013_small), epochs=6, early_stopping=2, **QUICK)
    lines = []
    summary = fit(cfg, load_splits(cfg), tmp_path / "run", progress=False, log=lines.append)
    assert summary["epochs"] == 4 and summary["best_epoch"] == 2
    assert lines[-1] == "early stopping: no better validation accuracy for 2 epochs"


def test_equal_accuracy_is_broken_by_the_lower_validation_loss(fer2013_small, tmp_path, monkeypatch):
    results = iter([(1.0, 0.5), (0.8, 0.9), (0.5, 0.9), (0.6, 0.9)])  # (loss, accuracy): 100 % reached early
    monkeypatch.setattr(Trainer, "validate", lambda trainer: next(results))
    cfg = TrainConfig(data=str(fer2013_small), epochs=4, **QUICK)
    summary = fit(cfg, load_splits(cfg), tmp_path / "run", progress=False, log=quiet)
    assert summary["best_epoch"] == 3


def test_best_model_file_matches_best_epoch(fer2013_small, tmp_path):
    cfg = TrainConfig(data=str(fer2013_small), epochs=2, **QUICK)
    summary = train_run(cfg, tmp_path / "run", progress=False, log=quiet)
    info = json.loads((tmp_path / "run" / "best.json").read_text())
    assert info["metrics"]["epoch"] == summary["best_epoch"]
    assert info["class_names"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert set(load_file(str(tmp_path / "run" / "best.safetensors"))) == set(_weights(tmp_path / "run"))


def test_ema_run_validates_and_saves_the_averaged_weights(fer2013_small, tmp_path, monkeypatch):
    seen = []

    def record(trainer):  # every epoch improves, so best.safetensors holds the last epoch's weights
        seen.append(trainer.eval_model)
        return 1.0, 0.1 * len(seen)

    monkeypatch.setattr(Trainer, "validate", record)
    cfg = TrainConfig(data=str(fer2013_small), epochs=2, ema_decay=0.9, **QUICK)
    fit(cfg, load_splits(cfg), tmp_path / "run", progress=False, log=quiet)
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
    """With pure distillation (weight 1) a run agrees with the teacher far more than with labels only."""
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
        return float((Classifier(model, info, device="cpu").predict_proba(images).argmax(1)
                      == teacher).mean())

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
    fit(replace(cfg, teacher="default"), load_splits(cfg), tmp_path / "run3", progress=False,
        log=lines.append)
    assert "distilling from default" in lines[0]


def test_several_teachers_teach_as_an_ensemble(model_file, tmp_path):
    """The ensemble's logits are the log of its members' mean probabilities (each member's inputs mapped
    to its own normalisation); one teacher keeps its own logits."""
    from ferkit.models import create_model
    from ferkit.train import Teacher

    torch.manual_seed(1)
    other = save_model(tmp_path / "other.safetensors", create_model("seed_cnn", num_classes=7).eval(),
                       ModelInfo("seed_cnn", list(CLASSES), mean=0.4, std=0.3))
    x = torch.randn(5, 1, 48, 48)
    cpu = torch.device("cpu")
    one, two = (Teacher(p, list(CLASSES), 48, 0.5, 0.25, cpu) for p in (model_file, other))
    both = Teacher([str(model_file), str(other)], list(CLASSES), 48, 0.5, 0.25, cpu)
    assert torch.equal(Teacher([model_file], list(CLASSES), 48, 0.5, 0.25, cpu).logits(x), one.logits(x))
    mean = (torch.softmax(one.logits(x), 1) + torch.softmax(two.logits(x), 1)) / 2
    assert torch.allclose(torch.softmax(both.logits(x), 1), mean, atol=1e-6)
    assert not torch.allclose(mean, torch.softmax(one.logits(x), 1), atol=1e-3)


def test_teacher_is_a_list_from_flags_recipes_and_old_runs(tmp_path):
    """`--teacher A B` names an ensemble; a recipe's or an older run's single path is a list of one."""
    from ferkit.config import load_recipe

    assert TrainConfig.from_dict({"teacher": "runs/a"}).teacher == ["runs/a"]
    assert TrainConfig.from_dict({"teacher": ""}).teacher == []
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher: runs/a\n")
    assert load_recipe(recipe).teacher == ["runs/a"]
    recipe.write_text("teacher: [runs/a, runs/b]\n")
    assert load_recipe(recipe).teacher == ["runs/a", "runs/b"]
    recipe.write_text("teacher: 3\n")
    with pytest.raises(ConfigError, match="teacher"):
        load_recipe(recipe)
    recipe.write_text("add_train: ../ckplus\n")
    assert load_recipe(recipe).add_train == ["../ckplus"]


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


def test_add_train_joins_the_ckplus_training_subjects_to_fer2013(fer2013_small, ckplus_dir):
    cfg = TrainConfig(data=str(fer2013_small), add_train=[str(ckplus_dir)], max_per_class=10)
    splits = load_splits(cfg)
    alone = load_splits(replace(cfg, add_train=[]))
    ck = make_splits(load_dataset(ckplus_dir))  # as `ferkit evaluate --data CK+48 --split test` splits it
    added = splits.train.subset(slice(len(alone.train), None))
    assert len(alone.train) == 70 and 0 < len(added) < 70  # ≤ 10 per class of CK+'s six shared classes
    assert not set(added.sources) & set(ck.test.sources) and not set(added.sources) & set(ck.val.sources)
    assert splits.val.sources.tolist() == alone.val.sources.tolist()  # selection stays on FER2013
    assert splits.test.sources.tolist() == alone.test.sources.tolist()
    assert "contempt" in splits.description and set(splits.train.usage) == {"Training"}


def test_add_train_with_a_missing_folder_is_one_error_line(fer2013_small, tmp_path, capsys):
    from ferkit.cli import main

    code = main(["train", "--data", str(fer2013_small), "--add-train", str(tmp_path / "nowhere"),
                 "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nowhere" in err[0] and err[0].startswith("ferkit: error:")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("view", ["augmented", "clean"])
def test_the_teacher_sees_the_augmented_batch_or_its_clean_view(view):
    """distill_view: the loss terms (the teacher) get the model's batch, or the same faces undegraded."""
    rng = np.random.default_rng(0)
    data = FaceDataset(images=rng.integers(0, 256, (16, 48, 48), dtype=np.uint8),
                       labels=rng.integers(0, 7, 16), class_names=["a", "b", "c", "d", "e", "f", "g"])
    degrade_only = AugmentConfig(rotation=0, width_shift=0, height_shift=0, zoom=0, horizontal_flip=False,
                                 noise=1.0, blur=1.0, erasing=1.0)
    cfg = TrainConfig(model="seed_cnn", batch_size=16, device="cpu", precision="fp32", threads=1,
                      augment=degrade_only, distill_view=view, teacher=["train_run loads it"])
    trainer = Trainer(cfg, data, data, progress=False)
    seen = {}
    trainer.model.register_forward_pre_hook(lambda _, args: seen.setdefault("model", args[0].clone()))
    trainer.loss_terms.append(lambda loss, logits, x: (seen.setdefault("teacher", x.clone()), loss)[1])
    trainer.train_step(trainer.train_images, trainer.train_targets)
    plain = prepare_input(trainer.train_images, trainer.mean, trainer.std, trainer.device, channels_last=True)
    assert not torch.equal(seen["model"], plain)  # the model trains on degraded faces either way
    assert torch.equal(seen["teacher"], plain if view == "clean" else seen["model"])


def test_a_clean_teacher_view_refuses_mixing():
    with pytest.raises(ConfigError, match="distill_view"):
        TrainConfig(distill_view="clean", teacher=["default"], augment=AugmentConfig(mixup=0.2))
    with pytest.raises(ConfigError, match="give one with --teacher"):
        TrainConfig(distill_view="clean")
    with pytest.raises(ConfigError, match="distill_view"):
        TrainConfig(distill_view="sideways")


class _HeapWatch(Callback):
    """Whether freed memory is kept during each epoch."""

    def __init__(self) -> None:
        self.kept: list[bool] = []

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        self.kept.append(heap.active())


@pytest.mark.parametrize("keep", [True, False])
def test_run_keeps_freed_memory_across_its_epochs_and_lets_go_after(keep: bool) -> None:
    watch = _HeapWatch()
    trainer = _trainer(callbacks=[watch])
    trainer.keep_freed_memory = keep
    trainer.run()
    assert watch.kept == [keep and heap._LIBC is not None] * 2 and not heap.active()


_FAULTS_PER_EPOCH = """
import json, resource, sys
import numpy as np
from ferkit.config import TrainConfig
from ferkit.data.dataset import FaceDataset
from ferkit.training import Callback, Trainer

class Faults(Callback):
    def __init__(self): self.faults = []
    def on_epoch_start(self, trainer, epoch): self.start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def on_epoch_end(self, trainer, row):
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.start)

rng = np.random.default_rng(0)
faces = FaceDataset(images=rng.integers(0, 256, (64, 48, 48), dtype=np.uint8),
                    labels=np.arange(64) % 7, class_names=["a", "b", "c", "d", "e", "f", "g"])
cfg = TrainConfig(model="seed_cnn", batch_size=64, epochs=6, precision="fp32", threads=2, device="cpu")
watch = Faults()
trainer = Trainer(cfg, faces, faces.subset(slice(0, 8)), [watch], progress=False)
trainer.keep_freed_memory = sys.argv[1] == "keep"
trainer.run()
print(json.dumps(watch.faults))
"""


@pytest.mark.skipif(heap._LIBC is None, reason="glibc only")
def test_kept_freed_memory_spares_each_step_its_page_faults() -> None:
    """seed_cnn's first block at batch 64 holds 34.7 MB per activation, beyond glibc's mmap threshold. In a
    fresh process (glibc's settings are process-wide): kept, later epochs' single steps reuse the heap's
    pages; returned, each step faults such blocks in afresh."""
    faults = {}
    for mode in ("keep", "off"):
        out = subprocess.run([sys.executable, "-c", _FAULTS_PER_EPOCH, mode], capture_output=True, text=True,
                             check=True).stdout
        # the heap settles in a step or two; then the typical step (a single epoch of either mode can stray by
        # a few thousand faults, and since seed_cnn's first batch norm left (patch_norm) a step allocates two
        # such blocks instead of four, so the margin is thinner)
        faults[mode] = float(np.median(json.loads(out.strip().splitlines()[-1])[2:]))
    block_pages = 64 * 64 * 46 * 46 * 4 // resource.getpagesize()
    assert faults["keep"] < block_pages / 4 and faults["off"] > block_pages, faults
