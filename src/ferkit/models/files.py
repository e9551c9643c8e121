"""Model files: weights in safetensors plus a JSON sidecar. Nothing is ever unpickled.

A model saved as `best.safetensors` has its description in `best.json`: architecture name,
class names, input size, normalisation and the metrics measured when it was saved. The calibration
temperature lives in the safetensors header's metadata, beside the weights it was fitted for, so that
new weights never inherit a stale one; `read_info` puts it in `ModelInfo.temperature`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from ..atomic import write_bytes, write_json
from ..errors import ModelFileError
from .registry import create_model

FORMAT_VERSION = 1
# The models that ship inside the package (MODEL_CARD.md): the name a user passes, and its file.
BUNDLED_MODELS = {"default": "default.safetensors", "wild": "wild.safetensors"}
BUNDLED_ABOUT = {"default": "fast, and the best on FER2013's own labels",
                 "wild": "the best on real photos measured here; 2.3x the default's multiply-adds per face"}
DEFAULT_MODEL_NAME = BUNDLED_MODELS["default"]
BEST_FILE = "best.safetensors"  # a run directory's model: the epoch with the best validation accuracy


@dataclass
class ModelInfo:
    """Everything needed to rebuild a model and feed it faces the way it was trained."""

    model_name: str
    class_names: list[str]
    in_size: int = 48
    in_channels: int = 1
    mean: float = 0.5
    std: float = 0.25
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    temperature: float = 1.0  # softmax(logits / T); fitted on validation data (`ferkit calibrate`)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def bundled_model_path(name: str = "default") -> Path:
    """A pretrained model shipped inside the package, by its name in BUNDLED_MODELS (see MODEL_CARD.md)."""
    path = Path(str(resources.files("ferkit") / "pretrained" / BUNDLED_MODELS[name]))
    if not path.is_file():
        raise ModelFileError(f"{path}: the bundled model '{name}' is missing from this installation; "
                             "pass a run directory or a model file written by `ferkit train`")
    return path


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_model(path: str | Path, model: torch.nn.Module, info: ModelInfo) -> Path:
    """Write `path` (.safetensors) and its JSON sidecar atomically. Returns the weights path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    tensors = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    write_bytes(path, save(tensors, metadata=_header_metadata(info)))
    description = {k: v for k, v in asdict(info).items() if k != "temperature"}  # the header holds it
    write_json(sidecar_path(path), {"format_version": FORMAT_VERSION, **description})
    return path


def _header_metadata(info: ModelInfo, base: dict[str, str] | None = None) -> dict[str, str]:
    metadata = {**(base or {}), "format": "ferkit", "model_name": info.model_name}
    metadata.pop("temperature", None)
    if info.temperature != 1.0:
        metadata["temperature"] = repr(float(info.temperature))
    return metadata


def write_temperature(path: str | Path, temperature: float, out: str | Path | None = None) -> Path:
    """Write model `path` with `temperature` in its header, weights unchanged, to `out` (default: `path`).

    Both files (weights and JSON sidecar) are written atomically.
    """
    path, out = Path(path), Path(out or path)
    if out.suffix != ".safetensors":
        raise ModelFileError(f"{out}: a model file must end in .safetensors")
    _check_temperature(temperature, path)
    info = read_info(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as handle:
            base = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: corrupt safetensors file ({exc})") from exc
    info.temperature = float(temperature)
    sidecar = sidecar_path(path).read_bytes()
    write_bytes(out, save(tensors, metadata=_header_metadata(info, base)))
    if out.resolve() != path.resolve():
        write_bytes(sidecar_path(out), sidecar)
    return out


def _check_temperature(value: object, where: Path) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value > 0):
        raise ModelFileError(f"{where}: temperature {value!r} is not a finite number > 0")
    return float(value)


def read_temperature(path: str | Path) -> float:
    """The calibration temperature in a .safetensors header (1.0 when the model was never calibrated)."""
    try:
        with safe_open(str(path), "pt") as handle:
            text = (handle.metadata() or {}).get("temperature")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: corrupt safetensors file ({exc})") from exc
    if text is None:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise ModelFileError(f"{path}: temperature {text!r} in the header is not a number") from None
    return _check_temperature(value, Path(path))


def refuse_pickle(path: Path) -> bytes:
    """Raise for a pickle or torch.save zip, looking at its first bytes only; returns those bytes."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise ModelFileError(f"{path}: this is a pickle/zip (torch.save) file; ferkit only loads "
                             "safetensors model files and never unpickles (nothing was loaded)")
    return head


def _refuse_unsafe(path: Path) -> None:
    if len(refuse_pickle(path)) < 9:
        raise ModelFileError(f"{path}: file is too short to be a safetensors model")


def read_info(path: str | Path) -> ModelInfo:
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise ModelFileError(f"{meta_path}: model description (JSON sidecar) is missing")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
        raw.pop("format_version", None)
        raw.pop("temperature", None)  # the weights file's header is the one place it is read from
        info = ModelInfo(**raw)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
        raise ModelFileError(f"{meta_path}: not a valid ferkit model description ({exc})") from exc
    names = info.class_names
    if (not isinstance(names, list) or not names or not all(isinstance(c, str) and c for c in names)
            or len(set(names)) != len(names)):
        raise ModelFileError(f"{meta_path}: class_names must be a non-empty list of distinct names")
    if not isinstance(info.model_name, str):
        raise ModelFileError(f"{meta_path}: model_name {info.model_name!r} is not a name")
    numbers = (info.mean, info.std)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers) or not info.std > 0:
        raise ModelFileError(f"{meta_path}: mean and std must be numbers and std > 0 "
                             f"(got {info.mean!r}, {info.std!r})")
    if not isinstance(info.in_size, int) or not 8 <= info.in_size <= 512:
        raise ModelFileError(f"{meta_path}: in_size {info.in_size!r} is not a plausible input size")
    if Path(path).is_file():
        info.temperature = read_temperature(path)
    return info


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelInfo]:
    """Rebuild the architecture named in the sidecar and load the weights, validating every shape."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, expected a .safetensors model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    _refuse_unsafe(path)
    info = read_info(path)
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: corrupt safetensors file ({exc})") from exc
    try:
        model = create_model(info.model_name, num_classes=info.num_classes, in_size=info.in_size,
                             in_channels=info.in_channels)
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot build model {info.model_name!r} ({exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)}, "
                         f"model {tuple(expected[k].shape)})")
        raise ModelFileError(f"{path}: weights do not fit {info.model_name} with "
                             f"{info.num_classes} classes at {info.in_size}px: " + "; ".join(parts))
    model.load_state_dict(state)
    return model.to(device).eval(), info
