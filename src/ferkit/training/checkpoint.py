"""checkpoint.pt: everything needed to continue a run exactly (see `Trainer.state_dict`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..atomic import atomic_open
from ..errors import ConfigError, ModelFileError
from ..models.files import BEST_FILE

CHECKPOINT = "checkpoint.pt"
BEST = BEST_FILE
REQUIRED = ("epoch", "model", "optimizer", "generator", "torch_rng", "history", "phases", "best", "mean",
            "std")


def save_checkpoint(run_dir: Path, state: dict) -> None:
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
            raise ModelFileError(f"{path}: checkpoint holds objects other than tensors and plain data "
                                 f"({reason}); refused: ferkit loads checkpoints with weights_only=True and "
                                 "never unpickles objects") from exc
        raise ModelFileError(f"{path}: checkpoint is corrupt or not a ferkit checkpoint ({reason})") from exc
    except Exception as exc:  # torch raises many types for a damaged file; its messages run over many lines
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        reason = reason.partition(". ")[0]  # torch adds advice on where checkpoints come from
        raise ModelFileError(f"{path}: checkpoint is corrupt or not a ferkit checkpoint ({reason})") from exc
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise ModelFileError(f"{path}: not a ferkit checkpoint (missing {', '.join(missing)})")
    return state


def check_world_size(state: dict, world_size: int, batch_size: int) -> None:
    """Refuse to continue a run on another number of processes: its global batch (batch_size per process
    times the processes) would change. Checkpoints from before distributed training were one process's."""
    trained = state.get("world_size", 1)
    if trained != world_size:
        how = ("without torchrun" if trained == 1 else
               f"with torchrun on {trained} processes (--nnodes × --nproc_per_node = {trained})")
        raise ConfigError(f"the run was trained on {trained} process(es) × --batch-size {batch_size} "
                          f"(a global batch of {trained * batch_size}) and cannot continue on {world_size}; "
                          f"resume it {how}")
