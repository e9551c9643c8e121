"""The optimiser and the learning-rate schedule, in phases (an extended run adds one)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..config import TrainConfig

# The optimiser's implementation, not its state: kept when a checkpoint's state is loaded into it.
_IMPLEMENTATION_KEYS = ("fused", "foreach")


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimiser of `cfg`, fused (one kernel for every parameter) where PyTorch has it for the device."""
    params = list(model.parameters())
    fused = can_fuse(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=True, fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def can_fuse(params: list[torch.Tensor]) -> bool | None:
    """True for floating-point parameters all on the CPU or all on CUDA; None (PyTorch's default) else."""
    devices = {p.device.type for p in params}
    floating = all(p.is_floating_point() for p in params)
    return True if floating and len(devices) == 1 and devices <= {"cpu", "cuda"} else None


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, keeping `optimizer`'s implementation: a checkpoint written
    before ferkit fused its optimisers would otherwise switch the fused one back to the slower loop."""
    implementation = [{k: g[k] for k in _IMPLEMENTATION_KEYS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, implementation):
        group.update(kept)


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
