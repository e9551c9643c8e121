"""The optimiser and the learning-rate schedule, in phases (an extended run adds one)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..config import TrainConfig


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_plateau(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> ReduceLROnPlateau | None:
    """The validation-driven schedule, or None when the schedule is a function of the epoch."""
    if cfg.scheduler != "plateau":
        return None
    return ReduceLROnPlateau(optimizer, factor=cfg.plateau_factor, patience=cfg.plateau_patience)


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
