"""Train a CNN on a FaceDataset: Adam/SGD, schedules, early stopping, checkpoints, resume.

A run directory holds everything about one training run:
    config.json        the TrainConfig
    splits.json        how the data was split and the class counts of each split
    history.json       one entry per epoch (loss, accuracy, learning rate, seconds)
    checkpoint.pt      the last finished epoch (weights, optimiser, RNG, EMA), for --resume
    best.safetensors   the weights of the epoch with the best validation accuracy (+ best.json);
                       with ema_decay, the averaged weights (they are the ones validated)
Evaluation and plots (`ferkit.evaluate`) add metrics.json, report.txt and plots/.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .atomic import atomic_open, write_json
from .augment import Augmenter
from .config import TrainConfig
from .data.splits import Splits
from .errors import ConfigError, DataError, FerkitError, ModelFileError
from .models import create_model
from .models.classifier import autocast, resolve_device, resolve_precision, to_input
from .models.files import BEST_FILE, ModelInfo, load_model, save_model
from .models.resolver import resolve

CHECKPOINT = "checkpoint.pt"
BEST = BEST_FILE


class TrainingInterrupted(FerkitError):
    exit_code = 130


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def scheduled_lr(cfg: TrainConfig, epoch: int, phase: dict) -> float:
    """Learning rate for 0-based `epoch` within a phase {start, end, lr} (extensions start a new phase)."""
    start, end, base = phase["start"], phase["end"], phase["lr"]
    if cfg.scheduler != "cosine":
        return base
    warm = cfg.warmup_epochs if start == 0 else 0
    if epoch - start < warm:
        return base * (epoch - start + 1) / (warm + 1)
    span = max(1, end - start - warm)
    progress = (epoch - start - warm) / span
    return cfg.min_lr + (base - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Teacher:
    """A trained model whose softened predictions on the same augmented batch are a second target."""

    def __init__(self, path: str | Path, class_names: list[str], image_size: int, mean: float, std: float,
                 device: torch.device) -> None:
        try:
            model, info = load_model(resolve(path).weights(), device=device)
        except ModelFileError as exc:
            raise ConfigError(f"teacher: {exc}") from None
        if list(info.class_names) != list(class_names) or info.in_size != image_size or info.in_channels != 1:
            raise ConfigError(f"{path}: the teacher predicts {info.class_names} from {info.in_size}px, but the data "
                              f"has {list(class_names)} at {image_size}px; a teacher must match both")
        self.model = model.eval()
        if device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        for p in self.model.parameters():
            p.requires_grad_(False)
        # the model's inputs are (pixels - mean) / std; the teacher may have been trained with other statistics
        self.scale, self.shift = std / info.std, (mean - info.mean) / info.std

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.scale + self.shift).float()


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(model / T)), Hinton et al.'s scaling keeps gradients comparable."""
    t = temperature
    return nn.functional.kl_div(torch.log_softmax(logits / t, 1), torch.log_softmax(teacher_logits / t, 1),
                                reduction="batchmean", log_target=True) * t * t


def _save_checkpoint(run_dir: Path, state: dict) -> None:
    with atomic_open(run_dir / CHECKPOINT) as handle:
        torch.save(state, handle)


def load_checkpoint(run_dir: Path) -> dict:
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise ModelFileError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only stopped reading: nothing in the file was run
        text = str(exc).partition("WeightsUnpickler error:")[2] or str(exc)
        reason = next((line.strip() for line in text.splitlines() if line.strip()), "").partition(". ")[0]
        if "Unsupported global" in reason:
            raise ModelFileError(f"{path}: checkpoint holds objects other than tensors and plain data ({reason}); "
                                 "refused: ferkit loads checkpoints with weights_only=True and never unpickles "
                                 "objects") from exc
        raise ModelFileError(f"{path}: checkpoint is corrupt or not a ferkit checkpoint ({reason})") from exc
    except Exception as exc:  # torch raises many types for a damaged file; its messages run over many lines
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        reason = reason.partition(". ")[0]  # torch adds advice on where checkpoints come from
        raise ModelFileError(f"{path}: checkpoint is corrupt or not a ferkit checkpoint ({reason})") from exc
    missing = [k for k in ("epoch", "model", "optimizer", "generator", "torch_rng", "history", "phases", "best",
                           "mean", "std") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ModelFileError(f"{path}: not a ferkit checkpoint (missing {', '.join(missing)})")
    return state


@torch.inference_mode()
def evaluate_loss_acc(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float,
                      device: torch.device, precision: str, batch_size: int = 256) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size].to(device), mean, std)
        y = labels[start:start + batch_size].to(device)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = max(1, len(images))
    return loss_sum / n, correct / n


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
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    else:
        torch.set_num_threads(os.cpu_count() or 1)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    train_set, val_set = splits.train, splits.val
    if len(train_set) == 0 or len(val_set) == 0:
        raise DataError(f"{cfg.data}: training needs images in both splits (train {len(train_set)}, "
                        f"val {len(val_set)}); the dataset is too small")
    if train_set.image_size != (cfg.image_size, cfg.image_size):
        raise ConfigError(f"images are {train_set.image_size}, config expects {cfg.image_size}px; load with image_size")

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=train_set.num_classes, in_size=cfg.image_size).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(cfg, model)
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.plateau_factor,
                                                          patience=cfg.plateau_patience)
               if cfg.scheduler == "plateau" else None)
    generator = torch.Generator().manual_seed(cfg.seed)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    augment = Augmenter(cfg.augment)
    ema = (torch.optim.swa_utils.AveragedModel(model, use_buffers=True,
                                               multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay))
           if cfg.ema_decay else None)

    train_images = torch.from_numpy(train_set.images).to(device)
    train_labels = torch.from_numpy(train_set.labels.astype(np.int64)).to(device)
    val_images = torch.from_numpy(val_set.images)
    val_labels = torch.from_numpy(val_set.labels.astype(np.int64))
    mean = float(train_set.images.mean() / 255.0)
    std = float(train_set.images.std() / 255.0) or 1.0

    history: list[dict] = []
    phases = [{"start": 0, "end": cfg.epochs, "lr": cfg.lr}]
    best = {"val_acc": -1.0, "epoch": 0, "since": 0}
    start_epoch = 0
    if resume:
        state = load_checkpoint(run_dir)
        for stale in run_dir.glob(".*.tmp"):  # temporary files of writes that a crash (SIGKILL, power) cut short
            stale.unlink(missing_ok=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            if not state.get("ema"):
                raise ModelFileError(f"{run_dir / CHECKPOINT}: the run is configured with EMA but its checkpoint "
                                     "holds no averaged weights")
            ema.load_state_dict(state["ema"])
        if plateau is not None and state.get("plateau"):
            plateau.load_state_dict(state["plateau"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, phases, best = state["history"], state["phases"], state["best"]
        mean, std = state["mean"], state["std"]
        start_epoch = state["epoch"]
        if cfg.epochs > phases[-1]["end"]:
            lr = extend_lr if extend_lr is not None else optimizer.param_groups[0]["lr"]
            phases.append({"start": start_epoch, "end": cfg.epochs, "lr": lr})
            for group in optimizer.param_groups:  # the plateau schedule starts from here too
                group["lr"] = lr
            log(f"extending from epoch {start_epoch} to {cfg.epochs} at lr {lr:g}")
            best["since"] = 0
        elif start_epoch >= cfg.epochs:
            log(f"run already has {start_epoch} epochs; pass a larger --epochs to extend it")

    teacher = (Teacher(cfg.teacher, train_set.class_names, cfg.image_size, mean, std, device)
               if cfg.teacher and cfg.distill_weight > 0 else None)
    validated = ema.module if ema is not None else model
    info = ModelInfo(model_name=cfg.model, class_names=list(train_set.class_names), in_size=cfg.image_size,
                     mean=mean, std=std)
    write_json(run_dir / "config.json", asdict(cfg))
    write_json(run_dir / "splits.json", splits.summary())
    if not resume:
        log(f"{cfg.model}: {sum(p.numel() for p in model.parameters()):,} parameters; {splits.description}; "
            f"train {len(train_set)}, val {len(val_set)}" + (f", test {len(splits.test)}" if splits.test else "")
            + f"; device {device.type}, precision {precision}, {torch.get_num_threads()} threads"
            + (f"; EMA {cfg.ema_decay:g}" if ema is not None else "")
            + (f"; distilling from {cfg.teacher} (weight {cfg.distill_weight:g}, T {cfg.distill_temperature:g})"
               if teacher is not None else ""))

    phase = phases[-1]
    n = len(train_images)
    steps = math.ceil(n / cfg.batch_size)
    run_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        if plateau is None:
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(cfg, epoch, phase)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=progress is False
                   if progress is not None else None, unit="batch")
        try:
            for step in bar:
                idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size].to(device)
                x = to_input(train_images[idx], mean, std)
                x = augment(x, generator=generator if device.type == "cpu" else None)
                y = train_labels[idx]
                if device.type == "cpu":
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, precision):
                    logits = model(x).float()
                    loss = criterion(logits, y)
                    if teacher is not None:
                        soft = distillation_loss(logits, teacher.logits(x), cfg.distill_temperature)
                        loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * soft
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
        except KeyboardInterrupt:
            bar.close()
            done = history[-1]["epoch"] if history else 0
            raise TrainingInterrupted(
                f"interrupted during epoch {epoch + 1}; the checkpoint holds {done} finished epoch(s). "
                f"Resume with: ferkit train --resume {run_dir}") from None
        bar.close()
        train_seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate_loss_acc(validated, val_images, val_labels, mean, std, device, precision)
        if plateau is not None:
            plateau.step(val_loss)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum.item() / n, "train_acc": correct.item() / n,
               "val_loss": val_loss, "val_acc": val_acc, "train_seconds": round(train_seconds, 3),
               "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        improved = val_acc > best["val_acc"]
        if improved:
            best = {"val_acc": val_acc, "epoch": epoch + 1, "since": 0}
            info.metrics = {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch + 1}
            save_model(run_dir / BEST, validated, info)
        else:
            best["since"] += 1
        _save_checkpoint(run_dir, {
            "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "plateau": plateau.state_dict() if plateau is not None else None,
            "ema": ema.state_dict() if ema is not None else None,
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            "history": history, "phases": phases, "best": best, "mean": mean, "std": std,
        })
        write_json(run_dir / "history.json", history)
        log(f"epoch {epoch + 1:3d}/{cfg.epochs}  lr {lr:.2e}  loss {row['train_loss']:.4f}  "
            f"acc {row['train_acc']:.4f}  val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  "
            f"{row['seconds']:.1f}s" + ("  *" if improved else ""))
        if cfg.early_stopping and best["since"] >= cfg.early_stopping:
            log(f"early stopping: no better validation accuracy for {cfg.early_stopping} epochs")
            break
    total = time.perf_counter() - run_start
    return {"epochs": len(history), "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
            "seconds_this_call": round(total, 2), "seconds_all_epochs": round(sum(h["seconds"] for h in history), 2),
            "device": device.type, "precision": precision}
