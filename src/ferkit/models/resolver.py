"""The one place that turns a model argument (`--model`, `--teacher`, `Recognizer(model=...)`) into a file.

A spec is one of: `default` (or None) or `wild`, the bundled models (MODEL_CARD.md); a registered
architecture name such as `fast_fer` (no weights: only `ferkit summary` can use it); a `.safetensors` model
file; an `.onnx` file written by `ferkit export`; a run directory written by `ferkit train`, holding
best.safetensors. The keywords win over a same-named file in the current folder (pass `./default` for
that); a Path object is always a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, ModelFileError
from .classifier import Classifier, FaceClassifier
from .files import BEST_FILE, BUNDLED_MODELS, bundled_model_path, refuse_pickle
from .int8 import Int8Classifier, int8_problem
from .onnx import OnnxClassifier, onnx_available
from .registry import list_models
from .wrappers import with_temperature

ModelKind = Literal["bundled", "architecture", "safetensors", "onnx", "run"]
ModelSpec = str | Path | None
DEFAULT = "default"
MODEL_SUFFIXES = (".safetensors", ".onnx")
ACCEPTED = (f"{' or '.join(repr(name) for name in BUNDLED_MODELS)} (the bundled models), a registered "
            f"architecture (see `ferkit models`), a .safetensors or .onnx model file, or a run directory "
            f"holding {BEST_FILE}")


@dataclass(frozen=True)
class ResolvedModel:
    """What a spec names: its kind, the file to load (None for an architecture) and a short name."""

    kind: ModelKind
    path: Path | None
    name: str

    def weights(self, onnx: bool = False) -> Path:
        """The file to load weights from; an architecture (and, unless `onnx`, an ONNX file) is refused."""
        if self.kind == "architecture":
            files = ".safetensors/.onnx file" if onnx else ".safetensors file"
            raise ModelFileError(f"{self.name} is an architecture without trained weights; pass a {files}, "
                                 f"a run directory or '{DEFAULT}'")
        assert self.path is not None
        if self.kind == "onnx" and not onnx:
            raise ModelFileError(f"{self.path}: an ONNX file cannot be loaded into PyTorch; pass the "
                                 f".safetensors model it was exported from, a run directory or '{DEFAULT}'")
        return self.path


def resolve(spec: ModelSpec = None) -> ResolvedModel:
    """Say what `spec` names, or raise one ModelFileError that lists the accepted kinds."""
    if spec is None:
        spec = DEFAULT
    if isinstance(spec, str) and spec in BUNDLED_MODELS:
        return ResolvedModel("bundled", bundled_model_path(spec), spec)
    if isinstance(spec, str) and spec in list_models():
        return ResolvedModel("architecture", None, spec)
    if isinstance(spec, str) and not spec.strip():
        raise ModelFileError(f"empty model name; expected {ACCEPTED}")
    path = Path(spec)
    if path.is_dir():
        return _run_dir(path)
    if path.is_file():
        return _model_file(path)
    if path.suffix.lower() in MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: no such model file")
    raise ModelFileError(f"{spec}: no such model file, run directory or architecture; expected {ACCEPTED}")


def _run_dir(path: Path) -> ResolvedModel:
    if not (path / BEST_FILE).is_file():
        raise ModelFileError(f"{path}: is a directory without {BEST_FILE}, so not a finished ferkit run; "
                             f"expected {ACCEPTED}")
    return ResolvedModel("run", path / BEST_FILE, path.resolve().name)


def _model_file(path: Path) -> ResolvedModel:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return ResolvedModel("safetensors", path, path.stem)
    if suffix == ".onnx":
        return ResolvedModel("onnx", path, path.stem)
    refuse_pickle(path)  # a torch .pt/.pth gets the message that says why it is never loaded
    raise ModelFileError(f"{path}: not a ferkit model file (by its name); expected {ACCEPTED}")


BACKENDS = ("auto", "torch", "onnx", "int8")


def load_classifier(model: ModelSpec | FaceClassifier = None, device: str = "cpu",
                    backend: str = "auto", calibrated: bool = True) -> FaceClassifier:
    """A ready classifier for any spec `resolve` accepts (an architecture is refused: it has no weights).

    backend "auto" on the CPU with ONNX Runtime installed picks the fastest engine that keeps the fp32
    labels: int8 (`models/int8.py`) when the model has an up-to-date int8 twin (the bundled one ships
    with one), else ONNX Runtime fp32; without ONNX Runtime, PyTorch. "torch", "onnx" (fp32) and "int8"
    force one; an .onnx file always runs on ONNX Runtime, as it is. calibrated: apply the model's
    temperature (`ferkit calibrate`), whichever backend runs it; False gives the network's own
    probabilities. A classifier passed in is returned as it is.
    """
    if isinstance(model, FaceClassifier):
        return model
    engine = _load_backend(model, device, backend)
    return with_temperature(engine) if calibrated else engine


def _load_backend(model: ModelSpec, device: str, backend: str) -> FaceClassifier:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    source = resolve(model)
    path = source.weights(onnx=True)
    if source.kind == "onnx":
        return OnnxClassifier.load(path)
    if backend == "auto":
        backend = _fastest_backend(path) if device == "cpu" and onnx_available() else "torch"
    if backend == "int8":
        return Int8Classifier.load(path)
    if backend == "onnx":
        return OnnxClassifier.load(path)
    return Classifier.load(path, device=device, precision="fp32")


def _fastest_backend(weights: Path) -> str:
    return "int8" if int8_problem(weights) is None else "onnx"
