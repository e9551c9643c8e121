"""Turn face crops (uint8 gray) into class probabilities with a trained model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .files import ModelInfo, load_model


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA GPU is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """True where bf16 matmuls/convs run natively (AVX-512 BF16 or AMX): there they are faster."""
    with contextlib.suppress(Exception):
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' picks bf16 autocast where the hardware runs it natively, else fp32."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_input(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 N×H×W (any device) → normalised float N×1×H×W."""
    return images.unsqueeze(1).float().div_(255.0).sub_(mean).div_(std)


def prepare_input(images: torch.Tensor, mean: float, std: float, device: torch.device, channels_last: bool,
                  augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """uint8 N×H×W → a model's input on `device`: normalised float N×1×H×W, augmented if asked.

    channels_last: the layout CPU convolutions run fastest in (set it where the model is channels-last too).
    """
    x = to_input(images.to(device), mean, std)
    if augment is not None:
        x = augment(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of N×classes logits (stable; keeps a float32 input float32)."""
    z = np.asarray(logits)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    if crops.shape[1:3] == (size, size):
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(c, (size, size), interpolation=interp) for c in crops])


@runtime_checkable
class FaceClassifier(Protocol):
    """What every classifier offers, whichever engine runs it (PyTorch `Classifier`, `OnnxClassifier`)."""

    info: ModelInfo

    @property
    def class_names(self) -> list[str]: ...

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray | torch.Tensor:
        """Raw scores, N×classes, for uint8 gray crops N×H×W of any size."""
        ...

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, N×classes, for uint8 gray crops N×H×W of any size."""
        ...


class Classifier:
    """A model with its description; `predict_proba(crops)` for uint8 gray crops N×H×W."""

    def __init__(self, model: nn.Module, info: ModelInfo, device: str = "auto", precision: str = "fp32"):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.info = info
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu" and self.precision == "bf16":
            self.model = self.model.to(memory_format=torch.channels_last)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str = "fp32") -> Classifier:
        model, info = load_model(path)
        return cls(model, info, device=device, precision=precision)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @torch.inference_mode()
    def logits(self, crops: np.ndarray | torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        if isinstance(crops, np.ndarray):
            crops = torch.from_numpy(resize_crops(np.asarray(crops, dtype=np.uint8), self.info.in_size))
        out = []
        for start in range(0, len(crops), batch_size):
            x = prepare_input(crops[start:start + batch_size], self.info.mean, self.info.std, self.device,
                              channels_last=self.precision == "bf16" and self.device.type == "cpu")
            with autocast(self.device, self.precision):
                out.append(self.model(x).float())
        if not out:
            return torch.zeros((0, self.info.num_classes))
        return torch.cat(out).cpu()

    def predict_proba(self, crops: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        return torch.softmax(self.logits(crops, batch_size), dim=1).numpy()
