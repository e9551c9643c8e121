"""Training on several processes with DistributedDataParallel, as `torchrun` starts them.

`torchrun --nproc_per_node N -m ferkit train ...` starts N copies of ferkit, each with WORLD_SIZE, RANK and
LOCAL_RANK in its environment; `ferkit.train.fit` sees them and builds a `DistributedTrainer`, which
overrides the `Trainer`'s seams. A run on W processes with `--batch-size B` is, step for step, the run of
one process with `--batch-size B·W` (within float rounding), where the model has no dropout and, on the
CPU, no BatchNorm (see below):

- `--batch-size` is per process: every step trains on a global batch of B·W images. Every rank draws the
  permutation one process would draw (same seed, same generator); global batch k is its positions
  [k·B·W, (k+1)·B·W), and rank r trains on every W-th image of it from the r-th (as torch's
  DistributedSampler splits an epoch).
- Gradients are summed over the ranks, each weighted by its share of the global batch (a DDP
  communication hook), so the epoch's last, uneven step is a mean over the global batch too.
- Augmentation: every rank augments the whole global batch with the shared generator and keeps its own
  rows, so each image gets the transform one process would give it, and the generator (on the CPU it
  also draws the batch order) stays in step on every rank. It costs W times the augmentation work.
- Dropout (torch's global generator) is seeded per rank and epoch: different masks on different ranks,
  the same ones after `--resume`; not the masks of one process.
- BatchNorm: on CUDA the model's BatchNorm layers become SyncBatchNorm (statistics of the global batch,
  as in one process). torch has no SyncBatchNorm for CPU tensors (2.13 raises ValueError), so on the CPU
  each rank normalises with the statistics of its own B images, and rank 0's running statistics are the
  ones kept (DDP broadcasts them before every step, `validate` before validating).
- Validation is split: each rank validates a contiguous share of the validation images; the sums are
  all-reduced, then broadcast from rank 0, so every rank gets bitwise the same numbers and takes the same
  plateau and early-stopping decisions.
- Rank 0 writes every file and log line (`is_writer`); the checkpoint records the world size, and
  resuming it with another world size (another global batch) is refused.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..augment import Augmenter
from ..config import TrainConfig
from ..data.dataset import FaceDataset
from ..errors import ConfigError
from ..models.classifier import resolve_device, to_input
from .callbacks import Callback
from .trainer import Trainer


@dataclass(frozen=True)
class World:
    """Where this process sits among those torchrun started."""

    rank: int  # 0 … size - 1 over every machine
    local_rank: int  # 0 … local_size - 1 on this machine: its GPU
    size: int
    local_size: int


def torchrun_world() -> World | None:
    """This process's place from torchrun's environment; None when it runs alone (no WORLD_SIZE, or 1)."""
    env = os.environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        if size <= 1:
            return None
        return World(rank=int(env["RANK"]), local_rank=int(env.get("LOCAL_RANK", env["RANK"])), size=size,
                     local_size=int(env.get("LOCAL_WORLD_SIZE", size)))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"WORLD_SIZE is {env.get('WORLD_SIZE')!r}, but RANK or LOCAL_RANK is missing or "
                          f"not a number ({exc}); start distributed training with torchrun") from None


def is_main_process() -> bool:
    """Whether this process writes files and logs: the only one, or torchrun's rank 0."""
    world = torchrun_world()
    return world is None or world.rank == 0


def check_batches(train_size: int, batch_size: int, world_size: int) -> None:
    """Refuse a split that would leave a process without images in an epoch's last step."""
    last = train_size % (batch_size * world_size)
    if 0 < last < world_size:
        raise ConfigError(f"{train_size} training images in global batches of {batch_size} × {world_size} "
                          f"processes leave {last} image(s) for the last step of each epoch, fewer than "
                          "the processes; change --batch-size or the number of processes")


def process_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of torch's global generator (dropout) on `rank` in `epoch`."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class _GradientShare:
    """This rank's share of the current step's global batch (set before each step)."""

    value = 1.0


def _weighted_sum_hook(share, bucket):  # no annotations: DDP checks them, and here they would be strings
    """Σ over ranks of share × (the rank's mean gradient) = the mean gradient over the global batch.

    share: `_GradientShare`; bucket: `dist.GradBucket`; returns a `torch.futures.Future[torch.Tensor]`.
    """
    tensor = bucket.buffer().mul_(share.value)
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])


class _GlobalBatchAugment:
    """Augments the step's whole global batch (`whole`, set before each step) and keeps this rank's rows."""

    def __init__(self, augment: Augmenter, world: World) -> None:
        self.augment, self.world = augment, world
        self.whole: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 **normalisation: float) -> torch.Tensor:
        # x (this rank's rows, unaugmented) is replaced: the draws must cover the global batch
        whole = self.augment(self.whole, generator=generator, **normalisation)
        return whole[self.world.rank::self.world.size]

    def views(self, x: torch.Tensor, generator: torch.Generator | None = None,
              **normalisation: float) -> tuple[torch.Tensor, torch.Tensor]:
        """`Augmenter.views` of the global batch, this rank's rows of each."""
        views = self.augment.views(self.whole, generator=generator, **normalisation)
        return tuple(v[self.world.rank::self.world.size] for v in views)


class DistributedTrainer(Trainer):
    """A `Trainer` that is one of torchrun's processes (see the module's description)."""

    def __init__(self, cfg: TrainConfig, train: FaceDataset, val: FaceDataset,
                 callbacks: Sequence[Callback] = (), progress: bool | None = None,
                 world: World | None = None) -> None:
        world = world or torchrun_world()
        if world is None:
            raise ConfigError("distributed training needs torchrun's environment (WORLD_SIZE > 1, RANK, "
                              "LOCAL_RANK)")
        check_batches(len(train), cfg.batch_size, world.size)
        if cfg.augment.mixes:
            raise ConfigError("--mixup and --cutmix are not supported with torchrun yet (each process would "
                              "mix its own rows, unlike one process); train without them")
        self.world, self.world_size, self.is_writer = world, world.size, world.rank == 0
        device = self._join(cfg)
        try:
            super().__init__(replace(cfg, device=device), train, val, callbacks,
                             progress=progress if self.is_writer else False)
            self._global_batches: Iterator[torch.Tensor] = iter(())
            self.augment = _GlobalBatchAugment(self.augment, world)
            self.gradient_share = _GradientShare()
            self.model = self._wrap(self.model)
        except BaseException:
            self.close()
            raise

    def _join(self, cfg: TrainConfig) -> str:
        """Pick this process's device and threads, and join the process group (gloo on CPU, nccl on CUDA)."""
        device = resolve_device(cfg.device)
        if device.type == "cuda":
            if self.world.local_rank >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK {self.world.local_rank}, but this machine has "
                                  f"{torch.cuda.device_count()} CUDA GPU(s); start one process per GPU")
            device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(device)
        elif not cfg.threads:  # the machine's cores, shared among its processes
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world.local_size))
        self.owns_process_group = not dist.is_initialized()
        if self.owns_process_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return str(device)

    def _wrap(self, model: nn.Module) -> DistributedDataParallel:
        if self.device.type == "cuda":  # the conversion keeps the Parameter objects the optimiser holds
            synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.eval_model = synced if self.eval_model is model else self.eval_model
            model = synced
        ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda"
                                      else None)
        ddp.register_comm_hook(self.gradient_share, _weighted_sum_hook)
        return ddp

    def close(self) -> None:
        """Unwrap the model and leave the process group now, rather than in the interpreter's shutdown
        (DDP holds the group in reference cycles; gloo's threads aborted the process there once)."""
        if isinstance(getattr(self, "model", None), DistributedDataParallel):
            self.model = self.model.module
        if getattr(self, "owns_process_group", False) and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_process_group = False
        gc.collect()

    def _set_data(self, train: FaceDataset, val: FaceDataset) -> None:
        super()._set_data(train, val)
        n, rank, size = len(self.val_images), self.world.rank, self.world.size
        share = slice(n * rank // size, n * (rank + 1) // size)
        self.val_images, self.val_labels = self.val_images[share], self.val_labels[share]

    # ------------------------------------------------------------------ the seams

    def batch_order(self, epoch: int) -> torch.Tensor:
        order = super().batch_order(epoch)  # the permutation one process draws
        self._global_batches = iter(order.split(self.cfg.batch_size * self.world.size))
        return order[self.world.rank::self.world.size]

    def reduce(self, sums: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(sums)
        dist.broadcast(sums, src=0)  # bitwise the same on every rank, whatever order the backend summed in
        return sums

    # ------------------------------------------------------------------ steps

    def train_one_epoch(self, epoch: int) -> tuple[float, float]:
        torch.manual_seed(process_seed(self.cfg.seed, epoch, self.world.rank))
        return super().train_one_epoch(epoch)

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step on this rank's rows of the next global batch of `batch_order`."""
        batch = next(self._global_batches).to(self.device)
        if len(images) != math.ceil((len(batch) - self.world.rank) / self.world.size):
            raise RuntimeError(f"train_step got {len(images)} images, out of step with batch_order")
        self.gradient_share.value = len(images) / len(batch)
        self.augment.whole = to_input(self.train_images[batch], self.mean, self.std)
        return super().train_step(images, targets)

    def validate(self) -> tuple[float, float]:
        for buffer in self.eval_model.buffers():  # rank 0's BatchNorm statistics, as the checkpoint holds
            dist.broadcast(buffer, src=0)
        return super().validate()

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {**super().state_dict(), "model": self._module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        prefix = "module." if self.model is not self._module else ""
        super().load_state_dict({**state, "model": {prefix + k: v for k, v in state["model"].items()}})

    @property
    def _module(self) -> nn.Module:
        """The model itself, inside DDP's wrapper (until `close`)."""
        return self.model.module if isinstance(self.model, DistributedDataParallel) else self.model
