"""ONNX export, and an ONNX Runtime classifier that is a `FaceClassifier` like the PyTorch `Classifier`."""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_bytes
from ..errors import ModelFileError
from .classifier import resize_crops
from .files import ModelInfo, load_model

OPSET = 17


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_bytes(model: torch.nn.Module, info: ModelInfo) -> bytes:
    """The model as ONNX (dynamic batch, input N×1×H×W normalised floats, output logits) with its info."""
    import onnx

    model = model.to("cpu", memory_format=torch.contiguous_format).float().eval()
    x = torch.zeros(1, info.in_channels, info.in_size, info.in_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, input_names=["input"], output_names=["logits"],
                          opset_version=OPSET, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {"ferkit": json.dumps(asdict(info))})
    return proto.SerializeToString()


def export_onnx(model_path: str | Path, out_path: str | Path) -> Path:
    """Write `model_path` (.safetensors) as an ONNX file at `out_path`, atomically."""
    model, info = load_model(model_path)
    write_bytes(out_path, export_bytes(model, info))
    return Path(out_path)


class OnnxClassifier:
    """`predict_proba(crops)` through ONNX Runtime on the CPU (uses every core)."""

    def __init__(self, onnx_bytes: bytes, info: ModelInfo, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.info = info
        self.device = torch.device("cpu")
        self.precision = "onnx"

    @classmethod
    def load(cls, path: str | Path, threads: int = 0) -> OnnxClassifier:
        """From a .safetensors model (exported in memory) or an .onnx file written by `export_onnx`."""
        path = Path(path)
        if path.suffix == ".onnx":
            import onnx

            if not path.is_file():
                raise ModelFileError(f"{path}: no such model file")
            try:
                proto = onnx.load(str(path))
                props = {p.key: p.value for p in proto.metadata_props}
                info = ModelInfo(**json.loads(props["ferkit"]))
            except Exception as exc:
                raise ModelFileError(f"{path}: not an ONNX model exported by ferkit ({exc})") from exc
            return cls(proto.SerializeToString(), info, threads)
        model, info = load_model(path)
        return cls(export_bytes(model, info), info, threads)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        crops = resize_crops(np.asarray(crops, dtype=np.uint8), self.info.in_size)
        out = [np.zeros((0, self.info.num_classes), np.float32)]
        for start in range(0, len(crops), batch_size):
            x = crops[start:start + batch_size, None].astype(np.float32)
            x = (x / 255.0 - self.info.mean) / self.info.std
            out.append(self.session.run(None, {"input": x.astype(np.float32)})[0])
        return np.concatenate(out)

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        z = self.logits(crops, batch_size)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
