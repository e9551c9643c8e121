"""What a training run does besides optimising, as hooks the `Trainer` calls: EMA, files, logging, stopping.

Hooks run in list order. Callbacks that write files or log check `trainer.is_writer`, so that of several
processes training one model only one writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..atomic import write_json
from ..errors import ModelFileError
from ..models.files import ModelInfo, save_model
from .checkpoint import BEST, save_checkpoint

if TYPE_CHECKING:
    from .trainer import Trainer


class Callback:
    """Override the hooks you need.

    `state_key` names the checkpoint entry that holds `state_dict()`; None for a callback without state.
    """

    state_key: str | None = None

    def setup(self, trainer: Trainer) -> None:
        """Once, when the trainer is built, before a checkpoint is loaded into it."""

    def on_train_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """`epoch` is 0-based: the one about to run."""

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        """After each optimiser step; `step` counts from 0 within the epoch."""

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        """After validation; `row` is the epoch's history entry, already in `trainer.history`."""

    def on_train_end(self, trainer: Trainer) -> None:
        pass

    def state_dict(self) -> Any:
        return None

    def load_state_dict(self, state: Any) -> None:
        pass


class EMA(Callback):
    """An exponential moving average of the weights, updated after every step: what is validated and saved."""

    state_key = "ema"

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.average: AveragedModel | None = None

    def setup(self, trainer: Trainer) -> None:
        self.average = AveragedModel(trainer.model, use_buffers=True,
                                     multi_avg_fn=get_ema_multi_avg_fn(self.decay))
        trainer.eval_model = self.average.module

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        self.average.update_parameters(trainer.model)

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if not state:
            raise ModelFileError("the run is configured with EMA but its checkpoint holds no averaged "
                                 "weights")
        self.average.load_state_dict(state)


class Checkpointing(Callback):
    """The run directory's files, each written atomically.

    At the start: `files` (name → JSON object, e.g. config.json). After every epoch: best.safetensors
    (+ best.json) when validation improved, then checkpoint.pt and history.json.
    """

    def __init__(self, run_dir: str | Path, files: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.files = files or {}

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.is_writer:
            for name, obj in self.files.items():
                write_json(self.run_dir / name, obj)

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if not trainer.is_writer:
            return
        if trainer.improved:
            cfg = trainer.cfg
            metrics = {"val_acc": row["val_acc"], "val_loss": row["val_loss"], "epoch": row["epoch"]}
            info = ModelInfo(model_name=cfg.model, class_names=list(trainer.class_names),
                             in_size=cfg.image_size, mean=trainer.mean, std=trainer.std, metrics=metrics)
            save_model(self.run_dir / BEST, trainer.eval_model, info)
        save_checkpoint(self.run_dir, trainer.state_dict())
        write_json(self.run_dir / "history.json", trainer.history)


class EpochLog(Callback):
    """One line per epoch: learning rate, losses, accuracies, seconds, and a * when validation improved."""

    def __init__(self, log: Callable[[str], None] = print) -> None:
        self.log = log

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if trainer.is_writer:
            self.log(f"epoch {row['epoch']:3d}/{trainer.cfg.epochs}  lr {row['lr']:.2e}  "
                     f"loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}  "
                     f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}  "
                     f"{row['seconds']:.1f}s" + ("  *" if trainer.improved else ""))


class EarlyStopping(Callback):
    """Stops the run after `patience` epochs without a better validation accuracy."""

    def __init__(self, patience: int, log: Callable[[str], None] = print) -> None:
        self.patience, self.log = patience, log

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if trainer.best["since"] >= self.patience:
            trainer.should_stop = True
            if trainer.is_writer:
                self.log(f"early stopping: no better validation accuracy for {self.patience} epochs")
