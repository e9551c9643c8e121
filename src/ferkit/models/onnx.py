"""ONNX export, and an ONNX Runtime classifier that is a `FaceClassifier` like the PyTorch `Classifier`."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..atomic import write_bytes
from ..errors import ModelFileError
from ..onnx_session import cpu_session
from .classifier import resize_crops, softmax
from .files import ModelInfo, load_model

if TYPE_CHECKING:
    import onnx

OPSET = 17
INT8_PROPERTY = "ferkit_int8"  # metadata of an int8 model: its source and calibration (`models/int8.py`)


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


def with_uint8_input(model_bytes: bytes, info: ModelInfo) -> bytes:
    """The model with its normalisation inside the graph: input `crops`, uint8 N×H×W, as ferkit crops them.

    At batch 1 the NumPy cast-and-normalise costs as much as a quarter of a session run; inside the graph it
    is one fused pass.
    """
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load_from_string(model_bytes)
    graph = proto.graph
    float_input = graph.input[0].name
    size = info.in_size
    graph.initializer.extend([
        helper.make_tensor("crops_channel_axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("crops_scale", TensorProto.FLOAT, [], [1.0 / (255.0 * info.std)]),
        helper.make_tensor("crops_shift", TensorProto.FLOAT, [], [-info.mean / info.std]),
    ])
    prefix = [helper.make_node("Cast", ["crops"], ["crops_float"], to=TensorProto.FLOAT),
              helper.make_node("Unsqueeze", ["crops_float", "crops_channel_axis"], ["crops_nchw"]),
              helper.make_node("Mul", ["crops_nchw", "crops_scale"], ["crops_scaled"]),
              helper.make_node("Add", ["crops_scaled", "crops_shift"], [float_input])]
    for node in reversed(prefix):
        graph.node.insert(0, node)
    del graph.input[0]
    graph.input.insert(0, helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", size, size]))
    return proto.SerializeToString()


def with_probability_outputs(onnx_bytes: bytes, classes: int) -> bytes:
    """The graph with two more outputs after its logits: `probs` (their softmax) and `top2` (each row's two
    largest probabilities, for the int8 re-check), so no NumPy softmax runs per call, which shows at batch 1
    (benchmarks/recognizer_speed.py, "softmax and top two in NumPy" row). `OnnxClassifier` uses them where
    a graph has them."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load_from_string(onnx_bytes)
    graph = proto.graph
    logits = graph.output[0].name
    graph.initializer.append(helper.make_tensor("top2_k", TensorProto.INT64, [1], [2]))
    graph.node.extend([helper.make_node("Softmax", [logits], ["probs"], axis=1),
                       helper.make_node("TopK", ["probs", "top2_k"], ["top2", "top2_indices"], axis=1)])
    graph.output.extend([helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes]),
                         helper.make_tensor_value_info("top2", TensorProto.FLOAT, ["batch", 2])])
    return proto.SerializeToString()


def export_onnx(model_path: str | Path, out_path: str | Path) -> Path:
    """Write `model_path` (.safetensors) as an ONNX file at `out_path`, atomically."""
    model, info = load_model(model_path)
    write_bytes(out_path, export_bytes(model, info))
    return Path(out_path)


def read_onnx_file(path: Path) -> tuple[onnx.ModelProto, dict[str, str]]:
    """An ONNX file written by ferkit and its metadata, or one ModelFileError."""
    import onnx

    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        proto = onnx.load(str(path))
        props = {p.key: p.value for p in proto.metadata_props}
        json.loads(props["ferkit"])
    except Exception as exc:
        raise ModelFileError(f"{path}: not an ONNX model exported by ferkit ({exc})") from exc
    return proto, props


class OnnxClassifier:
    """`predict_proba(crops)` through ONNX Runtime on the CPU (uses every core).

    Takes a graph with normalised float input N×1×H×W (what `ferkit export` writes) or uint8 crops N×H×W
    (`with_uint8_input`; then no NumPy work happens per call).
    """

    def __init__(self, onnx_bytes: bytes, info: ModelInfo, threads: int = 0, precision: str = "fp32",
                 spinning: str = "in-run"):
        self.session = cpu_session(onnx_bytes, threads, spinning)
        self.threads = self.session.get_session_options().intra_op_num_threads
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.takes_uint8 = model_input.type == "tensor(uint8)"
        # graphs from with_probability_outputs: logits, then probs and top2
        self.gives_probs = [o.name for o in self.session.get_outputs()][1:] == ["probs", "top2"]
        self.info = info
        self.device = torch.device("cpu")
        self.precision = precision

    @classmethod
    def load(cls, path: str | Path, threads: int = 0, spinning: str = "in-run") -> OnnxClassifier:
        """From a .safetensors model (exported in memory) or an .onnx file written by `export_onnx`."""
        path = Path(path)
        if path.suffix == ".onnx":
            proto, props = read_onnx_file(path)
            info = ModelInfo(**json.loads(props["ferkit"]))
            precision = "int8" if INT8_PROPERTY in props else "fp32"
            return cls(proto.SerializeToString(), info, threads, precision, spinning)
        model, info = load_model(path)
        graph = with_uint8_input(export_bytes(model, info), info)
        if info.num_classes >= 2:
            graph = with_probability_outputs(graph, info.num_classes)
        return cls(graph, info, threads, spinning=spinning)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self.outputs(crops, batch_size)[0]

    def outputs(self, crops: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
        """Every output of the graph (the logits first), batch by batch, concatenated."""
        crops = resize_crops(np.asarray(crops, dtype=np.uint8), self.info.in_size)
        if 0 < len(crops) <= batch_size:
            return self.session.run(None, {self.input_name: self._feed(crops)})
        if not len(crops):
            return [np.zeros((0, width if isinstance(width, int) else self.info.num_classes), np.float32)
                    for width in (o.shape[1] for o in self.session.get_outputs())]
        runs = [self.session.run(None, {self.input_name: self._feed(crops[start:start + batch_size])})
                for start in range(0, len(crops), batch_size)]
        return [np.concatenate(parts) for parts in zip(*runs)]

    def _feed(self, crops: np.ndarray) -> np.ndarray:
        if self.takes_uint8:
            return np.ascontiguousarray(crops)
        x = crops[:, None].astype(np.float32)
        return ((x / 255.0 - self.info.mean) / self.info.std).astype(np.float32)

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        outputs = self.outputs(crops, batch_size)
        return outputs[1] if self.gives_probs else softmax(outputs[0])
