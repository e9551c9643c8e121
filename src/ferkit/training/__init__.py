"""The trainer and its parts; `ferkit.train.fit` puts them together for a run directory."""

from .callbacks import EMA, Callback, Checkpointing, EarlyStopping, EpochLog
from .checkpoint import BEST, CHECKPOINT, load_checkpoint, save_checkpoint
from .losses import Distillation, distillation_loss
from .schedule import scheduled_lr
from .trainer import EpochInterrupted, Trainer

__all__ = ["BEST", "CHECKPOINT", "EMA", "Callback", "Checkpointing", "Distillation", "EarlyStopping",
           "EpochInterrupted", "EpochLog", "Trainer", "distillation_loss", "load_checkpoint",
           "save_checkpoint", "scheduled_lr"]
