"""Train a CNN on a FaceDataset: Adam/SGD, schedules, early stopping, checkpoints, resume.

A run directory holds everything about one training run:
    config.json        the TrainConfig
    splits.json        how the data was split and the class counts of each split
    history.json       one entry per epoch (loss, accuracy, learning rate, seconds)
    checkpoint.pt      the last finished epoch (weights, optimiser, RNG, EMA), for --resume
    best.safetensors   the weights of the epoch with the best validation accuracy (+ best.json);
                       with ema_decay, the averaged weights (they are the ones validated)
Evaluation and plots (`ferkit.evaluate`) add metrics.json, report.txt and plots/.

`fit` puts a `ferkit.training.Trainer` and its callbacks together for a run directory; started by torchrun
on several processes, a `DistributedTrainer` (`ferkit.training.distributed`), and only rank 0 logs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from .config import TrainConfig
from .data.splits import Splits
from .errors import ConfigError, FerkitError, ModelFileError
from .models.files import load_model
from .models.resolver import resolve
from .training import (
    BEST,
    CHECKPOINT,
    EMA,
    Callback,
    Checkpointing,
    Distillation,
    EarlyStopping,
    EpochInterrupted,
    EpochLog,
    Trainer,
    distillation_loss,
    load_checkpoint,
    scheduled_lr,
)
from .training.distributed import DistributedTrainer, is_main_process, torchrun_world

__all__ = ["BEST", "CHECKPOINT", "Teacher", "TrainingInterrupted", "distillation_loss", "fit",
           "load_checkpoint", "scheduled_lr"]


class TrainingInterrupted(FerkitError):
    exit_code = 130


class Teacher:
    """Trained models whose softened predictions on the same augmented batch are a second target; several
    models teach as an ensemble, the mean of their probabilities (its logits: their log)."""

    def __init__(self, paths: str | Path | list[str | Path], class_names: list[str], image_size: int,
                 mean: float, std: float, device: torch.device) -> None:
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.members = [_teacher_member(p, class_names, image_size, mean, std, device) for p in paths]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.members) == 1:
            model, scale, shift = self.members[0]
            return model(x * scale + shift).float()
        probs = torch.stack([torch.softmax(model(x * scale + shift).float(), 1)
                             for model, scale, shift in self.members]).mean(0)
        return probs.clamp_min(1e-12).log()


def _teacher_member(path: str | Path, class_names: list[str], image_size: int, mean: float, std: float,
                    device: torch.device) -> tuple[torch.nn.Module, float, float]:
    """One teacher model, frozen, with the scale and shift that map the student's inputs to its own."""
    try:
        model, info = load_model(resolve(path).weights(), device=device)
    except ModelFileError as exc:
        raise ConfigError(f"teacher: {exc}") from None
    if list(info.class_names) != list(class_names) or info.in_size != image_size or info.in_channels != 1:
        raise ConfigError(f"{path}: the teacher predicts {info.class_names} from {info.in_size}px, "
                          f"but the data has {list(class_names)} at {image_size}px; "
                          "a teacher must match both")
    model = model.eval()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    # the student's inputs are (pixels - mean) / std; the teacher may have been trained with other statistics
    return model, std / info.std, (mean - info.mean) / info.std


def fit(
    cfg: TrainConfig,
    splits: Splits,
    run_dir: str | Path,
    resume: bool = False,
    extend_lr: float | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train (or resume/extend) into `run_dir`; returns a summary dict. The best model is in best.safetensors.

    resume=True continues from checkpoint.pt up to cfg.epochs. If cfg.epochs is larger than the epochs
    the run was planned for, the extra epochs form a new schedule phase starting at `extend_lr`
    (or the current learning rate) — "train 15 epochs, then extend to 20".
    """
    run_dir = Path(run_dir)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    log = log if is_main_process() else _quiet
    trainer_class = DistributedTrainer if torchrun_world() is not None else Trainer
    trainer = trainer_class(cfg, splits.train, splits.val, _callbacks(cfg, splits, run_dir, log),
                            progress=progress)
    try:
        state = load_checkpoint(run_dir) if resume else None
        distilling = _add_teacher(trainer, state)
        if state is not None:
            _resume(trainer, state, run_dir, extend_lr, log)
        else:
            log(_banner(trainer, splits, distilling))
            if trainer.init_note:
                log(trainer.init_note)
        started = time.perf_counter()
        trainer.run()
    except EpochInterrupted as exc:
        raise TrainingInterrupted(
            f"interrupted during epoch {exc.epoch + 1}; the checkpoint holds {trainer.epoch} finished "
            f"epoch(s). Resume with: ferkit train --resume {run_dir}") from None
    finally:
        trainer.close()
    return _summary(trainer, time.perf_counter() - started)


def _quiet(_: str) -> None:
    pass


def _callbacks(cfg: TrainConfig, splits: Splits, run_dir: Path, log: Callable[[str], None]) -> list[Callback]:
    files = {"config.json": asdict(cfg), "splits.json": splits.summary()}
    callbacks: list[Callback] = [EMA(cfg.ema_decay)] if cfg.ema_decay else []
    callbacks += [Checkpointing(run_dir, files), EpochLog(log)]
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(cfg.early_stopping, log))
    return callbacks


def _add_teacher(trainer: Trainer, state: dict | None) -> bool:
    """Distil from cfg.teacher, if set; done before the checkpoint's RNG state is restored (loading draws)."""
    cfg = trainer.cfg
    if not cfg.teacher or cfg.distill_weight <= 0:
        return False
    mean, std = (state["mean"], state["std"]) if state is not None else (trainer.mean, trainer.std)
    teacher = Teacher(cfg.teacher, trainer.class_names, cfg.image_size, mean, std, trainer.device)
    trainer.loss_terms.append(Distillation(teacher, cfg.distill_weight, cfg.distill_temperature))
    return True


def _resume(trainer: Trainer, state: dict, run_dir: Path, extend_lr: float | None,
            log: Callable[[str], None]) -> None:
    if trainer.is_writer:  # temporary files of writes that a crash (SIGKILL, power) cut short
        for stale in run_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    try:
        trainer.load_state_dict(state)
    except ModelFileError as exc:
        raise ModelFileError(f"{run_dir / CHECKPOINT}: {exc}") from None
    epochs = trainer.cfg.epochs
    if epochs > trainer.phases[-1]["end"]:
        lr = trainer.extend(extend_lr)
        log(f"extending from epoch {trainer.epoch} to {epochs} at lr {lr:g}")
    elif trainer.epoch >= epochs:
        log(f"run already has {trainer.epoch} epochs; pass a larger --epochs to extend it")


def _banner(trainer: Trainer, splits: Splits, distilling: bool) -> str:
    cfg = trainer.cfg
    parameters = sum(p.numel() for p in trainer.model.parameters())
    return (f"{cfg.model}: {parameters:,} parameters; {splits.description}; "
            f"train {len(splits.train)}, val {len(splits.val)}"
            + (f", test {len(splits.test)}" if splits.test else "")
            + f"; device {trainer.device.type}, precision {trainer.precision}, "
            f"{torch.get_num_threads()} threads"
            + (f" × {trainer.world_size} processes (global batch {cfg.batch_size * trainer.world_size})"
               if trainer.world_size > 1 else "")
            + (f"; EMA {cfg.ema_decay:g}" if cfg.ema_decay else "")
            + (f"; distilling from {' + '.join(cfg.teacher)} (weight {cfg.distill_weight:g}, "
               f"T {cfg.distill_temperature:g})" if distilling else ""))


def _summary(trainer: Trainer, seconds: float) -> dict:
    history, best = trainer.history, trainer.best
    return {"epochs": len(history), "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
            "seconds_this_call": round(seconds, 2),
            "seconds_all_epochs": round(sum(h["seconds"] for h in history), 2),
            "device": trainer.device.type, "precision": trainer.precision}
