"""The training loop in steps, the way timm splits it: `train_step` → `train_one_epoch` → `validate`.

`Trainer.run` drives the epochs and calls the callbacks (EMA, checkpoints, logging, early stopping).
`state_dict` holds everything a run needs to continue exactly: weights, optimiser, schedule, history and
every random generator the trainer draws from.

A distributed variant overrides three seams and nothing else: `batch_order` (the samples this process
trains on, in order), `reduce` (sums losses and counts over the processes; the identity here) and
`is_writer` (whether this process writes files and logs; the callbacks check it). It also sets
`world_size` (recorded in the checkpoint) and releases its process group in `close`
(`ferkit.training.distributed`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..augment import Augmenter, mix_batch
from ..config import TrainConfig
from ..data.dataset import FaceDataset
from ..errors import ConfigError, DataError, ModelFileError
from ..models import create_model, resolve
from ..models.classifier import autocast, prepare_input, resolve_device, resolve_precision, to_input
from ..models.files import load_model
from ..models.transfer import load_all_but_head
from .callbacks import Callback
from .checkpoint import check_world_size
from .heap import reuse_freed_memory
from .losses import LossTerm
from .schedule import load_optimizer_state, make_optimizer, make_plateau, scheduled_lr

VAL_BATCH = 256


class EpochInterrupted(KeyboardInterrupt):
    """Ctrl-C while an epoch's batches ran: `epoch` (0-based) did not finish."""

    def __init__(self, epoch: int) -> None:
        super().__init__(epoch)
        self.epoch = epoch


def _check_data(cfg: TrainConfig, train: FaceDataset, val: FaceDataset) -> None:
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{cfg.data}: training needs images in both splits (train {len(train)}, "
                        f"val {len(val)}); the dataset is too small")
    if train.image_size != (cfg.image_size, cfg.image_size):
        raise ConfigError(f"images are {train.image_size}, config expects {cfg.image_size}px; "
                          "load with image_size")


class Trainer:
    """Trains `cfg.model` on `train`, validating on `val` after every epoch."""

    is_writer = True  # a distributed variant sets it on one process only
    world_size = 1  # processes training this model together, each on cfg.batch_size images per step
    keep_freed_memory = True  # epochs run in `reuse_freed_memory` (benchmarks turn it off to measure it)

    def __init__(self, cfg: TrainConfig, train: FaceDataset, val: FaceDataset,
                 callbacks: Sequence[Callback] = (), progress: bool | None = None) -> None:
        self.cfg, self.progress = cfg, progress
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        _check_data(cfg, train, val)
        self.class_names = list(train.class_names)
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, num_classes=train.num_classes, in_size=cfg.image_size).to(self.device)
        self.model = model.to(memory_format=torch.channels_last) if self.device.type == "cpu" else model
        self.eval_model: nn.Module = self.model  # validated and saved as best; EMA puts its average here
        self.optimizer = make_optimizer(cfg, self.model)
        self.plateau = make_plateau(cfg, self.optimizer)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.loss_terms: list[LossTerm] = []
        self.augment = Augmenter(cfg.augment)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the batch order
        self.augment_generator = self._make_augment_generator()
        self._set_data(train, val)
        self.init_note = ""  # what fine-tuning changed, for the log
        if cfg.init:
            self._load_init(cfg.init)
        self.epoch = 0  # epochs finished
        self.history: list[dict] = []
        self.phases = [{"start": 0, "end": cfg.epochs, "lr": cfg.lr}]
        self.best = {"val_acc": -1.0, "val_loss": float("inf"), "epoch": 0, "since": 0}
        self.should_stop = False
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.setup(self)

    def _make_augment_generator(self) -> torch.Generator:
        if self.device.type == "cpu":  # one generator for order and augmentation, as CPU runs always had
            return self.generator
        # on the training device, so that augmentation does not draw from the global (unsaved) CUDA generator
        return torch.Generator(device=self.device).manual_seed(self.cfg.seed)

    def _set_data(self, train: FaceDataset, val: FaceDataset) -> None:
        self.train_images = torch.from_numpy(train.images).to(self.device)
        self.train_labels = torch.from_numpy(train.labels.astype(np.int64)).to(self.device)
        self.train_targets = self._targets(train)
        self.val_images = torch.from_numpy(val.images)
        self.val_labels = torch.from_numpy(val.labels.astype(np.int64))
        self.mean = float(train.images.mean() / 255.0)
        self.std = float(train.images.std() / 255.0) or 1.0

    def _load_init(self, spec: str) -> None:
        """Fine-tuning: the weights and input normalisation of a trained model of the same architecture and
        input size. For other classes every weight but the classifier head is loaded; the head stays fresh
        and `init_note` says so."""
        try:
            weights, info = load_model(resolve(spec).weights(), device=self.device)
        except ModelFileError as exc:
            raise ConfigError(f"init: {exc}") from None
        cfg = self.cfg
        if (info.model_name, info.in_size) != (cfg.model, cfg.image_size):
            raise ConfigError(f"init {spec}: a {info.model_name} at {info.in_size}px cannot start a "
                              f"{cfg.model} at {cfg.image_size}px; fine-tuning needs the same architecture "
                              "and input size")
        if list(info.class_names) == self.class_names:
            self.model.load_state_dict(weights.state_dict())
        else:
            load_all_but_head(self.model, weights.state_dict())
            self.init_note = (f"init {spec}: its classes {list(info.class_names)} are not the data's "
                              f"{self.class_names}; loaded every weight but the classifier head, which "
                              "starts from random weights")
        self.mean, self.std = info.mean, info.std

    def _targets(self, train: FaceDataset) -> torch.Tensor:
        """What the loss compares the logits with: the labels, or with soft labels (FER+ votes) the
        distributions N×C, mixed with the labels' one-hot rows by cfg.soft_label_weight."""
        if train.soft_labels is None:
            return self.train_labels
        w = self.cfg.soft_label_weight
        one_hot = nn.functional.one_hot(self.train_labels, train.num_classes).float()
        return w * torch.from_numpy(train.soft_labels).float().to(self.device) + (1 - w) * one_hot

    # ------------------------------------------------------------------ seams for distributed training

    def batch_order(self, epoch: int) -> torch.Tensor:
        """Indices of the training samples this process trains on in `epoch`, in order."""
        return torch.randperm(len(self.train_images), generator=self.generator)

    def reduce(self, sums: torch.Tensor) -> torch.Tensor:
        """Sums (of losses and counts, never means) over all processes: the identity for one."""
        return sums

    def close(self) -> None:
        """Release what the trainer holds besides memory: nothing here, a distributed one's process group."""

    # ------------------------------------------------------------------ steps

    def loss(self, logits: torch.Tensor, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against `targets` (class indices N, or distributions N×C), then the loss terms, which
        see `x`: the model's batch, or the teacher's view of it (`inputs`)."""
        loss = self.criterion(logits, targets)
        for term in self.loss_terms:
            loss = term(loss, logits, x)
        return loss

    def mix(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup / cutmix of the augmented batch and its targets (distributions N×C then); as is when off."""
        aug = self.cfg.augment
        if not aug.mixes:
            return x, targets
        return mix_batch(x, targets, len(self.class_names), aug.mixup, aug.cutmix, self.augment_generator)

    def inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The augmented batch the model trains on, and the teacher's own view of it: the same faces with
        their geometry alone (`distill_view: clean`), or None when the teacher sees the augmented batch."""
        channels_last = self.device.type == "cpu"
        options = {"generator": self.augment_generator, "mean": self.mean, "std": self.std}
        if self.cfg.distill_view != "clean":
            return prepare_input(images, self.mean, self.std, self.device, channels_last,
                                 augment=partial(self.augment, **options)), None
        views = self.augment.views(to_input(images.to(self.device), self.mean, self.std), **options)
        x, clean = (v.contiguous(memory_format=torch.channels_last) if channels_last else v for v in views)
        return x, clean

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on uint8 images N×H×W (augmented here) against `targets` (class indices, or
        distributions N×C); returns loss and logits, detached."""
        self.model.train()
        x, teacher_view = self.inputs(images)
        x, targets = self.mix(x, targets)
        with autocast(self.device, self.precision):
            logits = self.model(x).float()
            loss = self.loss(logits, x if teacher_view is None else teacher_view, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), logits.detach()

    def train_one_epoch(self, epoch: int) -> tuple[float, float]:
        """Every batch of `epoch` (0-based), each followed by `on_step_end`; returns (mean loss, accuracy)."""
        order = self.batch_order(epoch)
        size = self.cfg.batch_size
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        bar = tqdm(range(math.ceil(len(order) / size)), desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                   leave=False, disable=None if self.progress is None else not self.progress, unit="batch")
        try:
            with self.memory():
                for step in bar:
                    idx = order[step * size:(step + 1) * size].to(self.device)
                    labels = self.train_labels[idx]
                    loss, logits = self.train_step(self.train_images[idx], self.train_targets[idx])
                    loss_sum += loss * len(labels)
                    correct += (logits.argmax(1) == labels).sum()
                    self._call("on_step_end", step)
        except KeyboardInterrupt:
            raise EpochInterrupted(epoch) from None
        finally:
            bar.close()
        count = torch.tensor(len(order), dtype=torch.float64, device=self.device)
        sums = torch.stack([loss_sum.double(), correct.double(), count])
        loss_total, correct_total, n = self.reduce(sums).tolist()
        return loss_total / n, correct_total / n

    @torch.inference_mode()
    def validate(self) -> tuple[float, float]:
        """(mean loss, accuracy) of `eval_model` on the validation split."""
        model = self.eval_model.eval()
        loss_sum, correct = 0.0, 0
        for start in range(0, len(self.val_images), VAL_BATCH):
            x = prepare_input(self.val_images[start:start + VAL_BATCH], self.mean, self.std, self.device,
                              channels_last=self.device.type == "cpu")
            labels = self.val_labels[start:start + VAL_BATCH].to(self.device)
            with autocast(self.device, self.precision):
                logits = model(x).float()
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
        sums = torch.tensor([loss_sum, correct, len(self.val_images)], dtype=torch.float64,
                            device=self.device)
        loss_sum, correct, n = self.reduce(sums).tolist()
        return loss_sum / max(1.0, n), correct / max(1.0, n)

    # ------------------------------------------------------------------ epochs

    def run(self) -> None:
        """Train from `self.epoch` up to cfg.epochs, or until a callback sets `should_stop`."""
        self._call("on_train_start")
        with self.memory():
            for epoch in range(self.epoch, self.cfg.epochs):
                self._run_epoch(epoch)
                if self.should_stop:
                    break
        self._call("on_train_end")

    def _run_epoch(self, epoch: int) -> None:
        """Train one epoch, validate, record the row and call the callbacks."""
        self._call("on_epoch_start", epoch)
        if self.plateau is None:
            for group in self.optimizer.param_groups:
                group["lr"] = scheduled_lr(self.cfg, epoch, self.phases[-1])
        lr = self.optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        train_loss, train_acc = self.train_one_epoch(epoch)
        train_seconds = time.perf_counter() - t0
        val_loss, val_acc = self.validate()
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
               "val_loss": val_loss, "val_acc": val_acc, "train_seconds": round(train_seconds, 3),
               "seconds": round(time.perf_counter() - t0, 3)}
        self._finish_epoch(row)
        self._call("on_epoch_end", row)

    def memory(self) -> AbstractContextManager:
        """Where the epochs run: `reuse_freed_memory` (the heap keeps what a step frees for the next), unless
        `keep_freed_memory` is off. `run` holds it across epochs; `train_one_epoch` alone, for one."""
        return reuse_freed_memory() if self.keep_freed_memory else nullcontext()

    def _finish_epoch(self, row: dict) -> None:
        if self.plateau is not None:
            self.plateau.step(row["val_loss"])
        self.history.append(row)
        self.epoch = row["epoch"]
        if self._better(row):
            self.best = {"val_acc": row["val_acc"], "val_loss": row["val_loss"], "epoch": row["epoch"],
                         "since": 0}
        else:
            self.best["since"] += 1

    def _better(self, row: dict) -> bool:
        """Higher validation accuracy, or the same with a lower validation loss: a small validation set (a
        CK+ fold's dozen subjects) often reaches 100 % early, and the loss still tells the epochs apart."""
        if row["val_acc"] != self.best["val_acc"]:
            return row["val_acc"] > self.best["val_acc"]
        return row["val_loss"] < self.best.get("val_loss", float("inf"))

    @property
    def improved(self) -> bool:
        """Whether the last finished epoch is the best so far."""
        return bool(self.history) and self.best["epoch"] == self.history[-1]["epoch"]

    def extend(self, lr: float | None = None) -> float:
        """A new schedule phase from here to cfg.epochs at `lr` (default: the current rate); returns it."""
        lr = lr if lr is not None else self.optimizer.param_groups[0]["lr"]
        self.phases.append({"start": self.epoch, "end": self.cfg.epochs, "lr": lr})
        for group in self.optimizer.param_groups:  # the plateau schedule starts from here too
            group["lr"] = lr
        self.best["since"] = 0
        return lr

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """The checkpoint: weights, optimiser, schedule, history, normalisation, generators, callbacks."""
        state = {"epoch": self.epoch, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "plateau": self.plateau.state_dict() if self.plateau is not None else None,
                 "ema": None,  # every checkpoint has had this key; the EMA callback fills it in
                 "history": self.history, "phases": self.phases, "best": self.best, "mean": self.mean,
                 "std": self.std, "world_size": self.world_size, **self.rng_state()}
        for callback in self.callbacks:
            if callback.state_key:
                state[callback.state_key] = callback.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        check_world_size(state, self.world_size, self.cfg.batch_size)
        self.model.load_state_dict(state["model"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        if self.plateau is not None and state.get("plateau"):
            self.plateau.load_state_dict(state["plateau"])
        for callback in self.callbacks:
            if callback.state_key:
                callback.load_state_dict(state.get(callback.state_key))
        self.history, self.phases, self.best = state["history"], state["phases"], state["best"]
        self.mean, self.std, self.epoch = state["mean"], state["std"], state["epoch"]
        self.load_rng_state(state)

    def rng_state(self) -> dict[str, torch.Tensor]:
        """Every random generator the trainer draws from (dropout and the like use torch's global ones)."""
        state = {"generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}
        if self.augment_generator is not self.generator:
            state["augment_generator"] = self.augment_generator.get_state()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_rng_state(self, state: dict) -> None:
        """Restore `rng_state()`. Generators a checkpoint has no state for (other device, older ferkit)
        keep their seed."""
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "augment_generator" in state and self.augment_generator is not self.generator:
            self.augment_generator.set_state(state["augment_generator"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
