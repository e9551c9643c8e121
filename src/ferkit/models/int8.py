"""int8 models for ONNX Runtime: static quantisation, and a classifier that re-checks near-ties in fp32.

Static QDQ quantisation (per-channel int8 weights, uint8 activations, min/max ranges calibrated on FER2013
Training faces, never test faces) runs the bundled model about 3× faster on an AVX-512 VNNI CPU, but on its
own it changes the label of about 1 % of faces: those whose two best classes are within a few hundredths.
`Int8Classifier` therefore runs every face in int8 and runs again in fp32 only the faces whose top-two
probabilities are closer than `recheck_margin` (about 3 % of faces); those get the fp32 answer exactly.
BENCHMARKS.md ("Classifier speed") has the agreement with fp32 and the speed.

A model's int8 twin sits beside its weights (`default.safetensors` → `default.int8.onnx`) and records the
SHA-256 of the weights it was made from (the tensors, not the file: a new temperature or other metadata
keeps the twin valid), so a retrained model never runs with a stale twin.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..atomic import write_bytes
from ..errors import ConfigError, ModelFileError
from .classifier import resize_crops, softmax
from .files import ModelInfo, load_model
from .onnx import INT8_PROPERTY, OnnxClassifier, export_bytes, read_onnx_file, with_uint8_input

INT8_SUFFIX = ".int8.onnx"
RECHECK_MARGIN = 0.03  # chosen on FER2013 Training faces: benchmarks/recognizer_speed.py --margins
CALIBRATION_FACES = 1024
TRAINING_USAGES = ("Training", "train")


def int8_path(weights: Path) -> Path:
    """Where the int8 twin of a .safetensors model lives: beside it, `<stem>.int8.onnx`."""
    return weights.with_name(weights.stem + INT8_SUFFIX)


def weights_sha256(path: Path) -> str:
    """SHA-256 over a .safetensors file's tensors (names, dtypes, shapes, bytes), whatever its metadata."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(path), framework="np") as tensors:
        for name in sorted(tensors.keys()):
            array = np.ascontiguousarray(tensors.get_tensor(name))
            digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def calibration_crops(dataset: str | Path, faces: int = CALIBRATION_FACES, seed: int = 0) -> np.ndarray:
    """`faces` crops drawn (fixed seed) from the training split of `dataset`: never test faces."""
    from ..data import load_dataset

    data = load_dataset(dataset)
    if data.usage is None or not np.isin(data.usage, TRAINING_USAGES).any():
        raise ConfigError(f"{dataset}: calibration needs a dataset with a training split (FER2013 "
                          "Training, or a train/ folder); test faces must not tune the model")
    train = data.where_usage(*TRAINING_USAGES).images
    pick = np.random.default_rng(seed).choice(len(train), min(faces, len(train)), replace=False)
    return train[np.sort(pick)]


def quantize(fp32_bytes: bytes, calibration: np.ndarray, info: ModelInfo) -> bytes:
    """Static QDQ int8 (per-channel weights, min/max activation ranges) of a float-input ferkit graph."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = ((calibration[:, None].astype(np.float32) / 255.0 - info.mean) / info.std).astype(np.float32)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(x[i:i + 128] for i in range(0, len(x), 128))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    logging.getLogger("onnxruntime").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, out = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(fp32_bytes)
        quant_pre_process(str(source), str(prepared))
        quantize_static(str(prepared), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return out.read_bytes()


def build_int8(weights: Path, calibration: np.ndarray, calibrated_on: str) -> bytes:
    """The int8 twin of `weights` (.safetensors): uint8 crops in, logits out, its provenance in metadata."""
    import onnx

    model, info = load_model(weights)
    quantized = with_uint8_input(quantize(export_bytes(model, info), calibration, info), info)
    proto = onnx.load_from_string(quantized)
    provenance = {"source_sha256": weights_sha256(weights), "calibrated_on": calibrated_on,
                  "calibration_faces": len(calibration), "recheck_margin": RECHECK_MARGIN}
    onnx.helper.set_model_props(proto, {"ferkit": json.dumps(asdict(info)),
                                        INT8_PROPERTY: json.dumps(provenance)})
    return proto.SerializeToString()


def export_int8(weights: Path, out: Path, calibration_dataset: str | Path) -> Path:
    """Write the int8 twin of `weights`, calibrated on the training split of `calibration_dataset`."""
    crops = calibration_crops(calibration_dataset)
    write_bytes(out, build_int8(weights, crops, f"{Path(calibration_dataset).name} training split"))
    return out


def int8_problem(weights: Path) -> str | None:
    """Why `weights` has no usable int8 twin (missing, or made from other weights); None when it has one."""
    twin = int8_path(weights)
    if not twin.is_file():
        return f"{weights}: no int8 model beside it ({twin.name}); make one with `ferkit export --int8`"
    _, props = read_onnx_file(twin)
    if INT8_PROPERTY not in props:
        return f"{twin}: not an int8 model written by `ferkit export --int8`"
    if json.loads(props[INT8_PROPERTY]).get("source_sha256") != weights_sha256(weights):
        return f"{twin}: made from other weights than {weights.name}; run `ferkit export --int8` again"
    return None


class Int8Classifier:
    """int8 ONNX Runtime for every face, fp32 again for the near-ties: a `FaceClassifier`."""

    def __init__(self, fast: OnnxClassifier, exact: OnnxClassifier, recheck_margin: float = RECHECK_MARGIN):
        self.fast, self.exact, self.recheck_margin = fast, exact, recheck_margin
        self.info = exact.info
        self.device = exact.device
        self.precision = "int8"
        self.rechecked = 0  # faces run again in fp32 so far

    @classmethod
    def load(cls, weights: str | Path, threads: int = 0, spinning: bool = False) -> Int8Classifier:
        """The int8 twin of `weights` (.safetensors) with the fp32 model for re-checks.

        spinning: let idle ONNX Runtime threads busy-wait for the next run (see `OnnxClassifier`).
        """
        weights = Path(weights)
        if (problem := int8_problem(weights)) is not None:
            raise ModelFileError(problem)
        fast = OnnxClassifier.load(int8_path(weights), threads, spinning)
        _, props = read_onnx_file(int8_path(weights))
        margin = json.loads(props[INT8_PROPERTY]).get("recheck_margin", RECHECK_MARGIN)
        return cls(fast, OnnxClassifier.load(weights, threads, spinning), margin)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        crops = resize_crops(np.asarray(crops, dtype=np.uint8), self.info.in_size)
        z = self.fast.logits(crops, batch_size)
        near_tie = np.flatnonzero(top_two_gap(softmax(z)) < self.recheck_margin)
        if len(near_tie):
            z[near_tie] = self.exact.logits(crops[near_tie], batch_size)
            self.rechecked += len(near_tie)
        return z

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return softmax(self.logits(crops, batch_size))


def top_two_gap(probs: np.ndarray) -> np.ndarray:
    """Per row, the best probability minus the second best."""
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top = np.partition(probs, -2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]
