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


def with_space_to_depth_stem(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The twin with its one-channel 3×3 stride-2 stem convolution run as a 2×2 convolution over the crop's
    2×2 pixel blocks stacked as 4 channels (ONNX SpaceToDepth on the uint8 crop); a new proto.

    Each output of the stride-2 convolution reads a 3×3 window that spans the blocks at rows and columns
    i−1 and i, so the same int8 weights, placed in a 2×2 kernel over 4 channels with zeros where a block's
    pixel lies outside the window, give the same integer sums: the outputs are bit-for-bit the same
    (tests/test_int8.py). ONNX Runtime runs one input channel poorly: with the stem on 4 the default's twin
    runs one face about 8 % faster (BENCHMARKS.md, "The stem on SpaceToDepth's four channels"). Graphs
    without that stem come back unchanged.
    """
    from onnx import helper, numpy_helper

    proto = type(proto).FromString(proto.SerializeToString())  # the caller's graph is left alone
    graph = proto.graph
    unsqueeze = _only_reader(graph, graph.input[0].name, "Unsqueeze")
    dequantize = unsqueeze and _only_reader(graph, unsqueeze.output[0], "DequantizeLinear")
    conv = dequantize and _only_reader(graph, dequantize.output[0], "Conv")
    weight = conv and _stride2_stem_weight(graph, conv)
    size = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:3]]
    if weight is None or len(size) != 2 or any(s <= 0 or s % 2 for s in size):  # known, even sides only
        return proto
    initializer, quantized = weight
    blocks = np.zeros((len(quantized), 2, 2, 2, 2), np.int8)  # out, row and column in the block, kernel y, x
    window = {(0, 1): 0, (1, 0): 1, (1, 1): 2}  # (kernel position, pixel within the block) → 3×3 tap
    for (ky, row), dy in window.items():
        for (kx, col), dx in window.items():
            blocks[:, row, col, ky, kx] = quantized[:, 0, dy, dx]
    initializer.CopyFrom(numpy_helper.from_array(blocks.reshape(-1, 4, 2, 2), initializer.name))
    pixels, unsqueeze.output[0] = unsqueeze.output[0], "crops_one_channel"
    stack = helper.make_node("SpaceToDepth", ["crops_one_channel"], [pixels], blocksize=2)
    graph.node.insert(list(graph.node).index(unsqueeze) + 1, stack)
    del conv.attribute[:]
    two_by_two = {"kernel_shape": [2, 2], "strides": [1, 1], "pads": [1, 1, 0, 0], "dilations": [1, 1],
                  "group": 1}
    conv.attribute.extend(helper.make_attribute(key, value) for key, value in two_by_two.items())
    return proto


MATRIX_PRODUCT_DEPTH = 512  # inputs per output (channels × kernel taps) from which the im2col path won
WEIGHT_LIMIT = 64  # |int8 weight| of the 7-bit twins: pairs of uint8 × int8 products fit 16 bits without VNNI


def with_matrix_product_convolutions(proto: onnx.ModelProto,
                                     min_depth: int = MATRIX_PRODUCT_DEPTH) -> onnx.ModelProto:
    """The twin with one output channel of each deep convolution (at least `min_depth` inputs per output)
    given a weight zero point of ±1 instead of 0, its weights shifted by the same; a new proto.

    QLinearConv computes Σ (x − x₀)(w − w₀), so the integers, and the outputs, are bit-for-bit the same
    (tests/test_int8.py). What changes is ONNX Runtime's kernel: weights whose zero points are all 0 go to
    its direct convolution kernels, others to im2col and its int8 matrix product, which on the AMX Xeon
    runs one face's 3×3 convolutions with 1,152 or more inputs per output up to a sixth faster, and the
    stem and 1×1 shortcuts slower (BENCHMARKS.md, "Where one face's time goes"). Whether the whole graph
    gains depends on the CPU, so `Int8Classifier.load` times it before using it. The shifted channel is one
    whose weights stay within ±WEIGHT_LIMIT, as CPUs without VNNI need; a convolution without such a
    channel is left alone.
    """
    from onnx import numpy_helper

    proto = type(proto).FromString(proto.SerializeToString())  # the caller's graph is left alone
    graph = proto.graph
    tensors = {t.name: t for t in graph.initializer}
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        weight = _symmetric_int8_weight(graph, tensors, conv)
        if weight is None or weight[2] is None or int(np.prod(weight[1].shape[1:])) < min_depth:
            continue
        weights, quantized, zero = weight
        shift = _zero_point_shift(quantized, numpy_helper.to_array(zero))
        if shift is None:
            continue
        channel, step = shift
        quantized, zeros = quantized.copy(), numpy_helper.to_array(zero).copy()
        quantized[channel] += step
        zeros[channel] = step
        weights.CopyFrom(numpy_helper.from_array(quantized, weights.name))
        zero.CopyFrom(numpy_helper.from_array(zeros, zero.name))
    return proto


def _zero_point_shift(quantized: np.ndarray, zero: np.ndarray) -> tuple | None:
    """(index, ±1): the channel of a per-channel zero point (`...`, every weight, for a per-tensor one) that
    can move by ±1 and keep its weights within ±WEIGHT_LIMIT; None if none can."""
    rows = quantized.reshape(len(quantized), -1) if zero.ndim else quantized.reshape(1, -1)
    for index, row in enumerate(rows):
        for step in (1, -1):
            if -WEIGHT_LIMIT <= int(row.min()) + step and int(row.max()) + step <= WEIGHT_LIMIT:
                return (index if zero.ndim else ..., step)
    return None


def _symmetric_int8_weight(graph: onnx.GraphProto, tensors: dict, conv: onnx.NodeProto) -> tuple | None:
    """(weight initializer, its int8 values, zero-point initializer or None where the graph gives none) of an
    ungrouped convolution whose weight comes from its own DequantizeLinear with zero points 0; else None."""
    from onnx import helper, numpy_helper

    if any(a.name == "group" and helper.get_attribute_value(a) != 1 for a in conv.attribute):
        return None
    producer = next((n for n in graph.node if conv.input[1] in n.output), None)
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    quantized_name = producer.input[0]
    zero_name = producer.input[2] if len(producer.input) > 2 else ""
    if (quantized_name not in tensors or (zero_name and zero_name not in tensors)
            or _only_reader(graph, conv.input[1], "Conv") is not conv
            or any(_only_reader(graph, name, "DequantizeLinear") is not producer
                   for name in (quantized_name, zero_name) if name)):
        return None
    quantized = numpy_helper.to_array(tensors[quantized_name])
    zero = tensors[zero_name] if zero_name else None
    zeros = numpy_helper.to_array(zero) if zero is not None else np.zeros(0, np.int8)
    if quantized.dtype != np.int8 or zeros.dtype != np.int8 or zeros.any():
        return None
    return tensors[quantized_name], quantized, zero


def _only_reader(graph: onnx.GraphProto, name: str, op_type: str) -> onnx.NodeProto | None:
    nodes = [n for n in graph.node if name in n.input]
    return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type else None


def _stride2_stem_weight(graph: onnx.GraphProto, conv: onnx.NodeProto) -> tuple | None:
    """`conv`'s weight initializer and its int8 values if `conv` is a one-channel 3×3 stride-2 convolution
    padded by one pixel with symmetric (zero-point 0) weights; otherwise None."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if [list(attrs.get(k, d)) for k, d in (("kernel_shape", ()), ("strides", ()), ("pads", ()),
                                             ("dilations", (1, 1)))] != [[3, 3], [2, 2], [1] * 4, [1, 1]]:
        return None
    weight = _symmetric_int8_weight(graph, {t.name: t for t in graph.initializer}, conv)
    return weight[:2] if weight is not None and weight[1].shape[1:] == (1, 3, 3) else None


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
            int8 = INT8_PROPERTY in props
            graph = with_space_to_depth_stem(proto) if int8 else proto
            return cls(graph.SerializeToString(), info, threads, "int8" if int8 else "fp32", spinning)
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
