"""int8 models for ONNX Runtime: static quantisation, and a classifier that re-checks near-ties in fp32.

Static QDQ quantisation (per-channel 7-bit int8 weights, uint8 activations with percentile ranges calibrated
on FER2013 Training faces, never test faces) runs the bundled model 2–3× faster than fp32 (more on a VNNI
CPU), but on its own it changes the label of 1–2 % of faces: those whose two best classes are within a few
hundredths. `Int8Classifier` therefore runs every face in int8 and runs again in fp32 only the faces whose
top-two probabilities are closer than `recheck_margin` (chosen on the validation split when the twin is made;
about 5 % of faces); those get the fp32 answer exactly. BENCHMARKS.md ("Classifier speed") has the agreement
with fp32 and the speed.

A model's int8 twin sits beside its weights (`default.safetensors` → `default.int8.onnx`) and records the
SHA-256 of the weights it was made from (the tensors, not the file: a new temperature or other metadata
keeps the twin valid), so a retrained model never runs with a stale twin.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import write_bytes
from ..errors import ConfigError, ModelFileError
from .classifier import resize_crops, softmax
from .files import ModelInfo, load_model
from .onnx import (
    INT8_PROPERTY,
    OnnxClassifier,
    export_bytes,
    read_onnx_file,
    with_matrix_product_convolutions,
    with_probability_outputs,
    with_space_to_depth_stem,
    with_uint8_input,
)

if TYPE_CHECKING:
    import onnx

INT8_SUFFIX = ".int8.onnx"
RECHECK_MARGIN = 0.03  # for twins that record no margin of their own
MARGIN_GRID = tuple(round(0.0025 * i, 4) for i in range(21))  # 0 to 0.05
SAME_LABEL_FLOOR = 0.996  # the margin keeps ≥ 99.6 % of fp32's labels on the validation split (target 99.5 %)
CALIBRATION_FACES = 4096
CALIBRATION_PERCENTILE = 99.999  # activation ranges clip the top 0.001 %: fewer flips than min/max or 99.99
TRAINING_USAGES = ("Training", "train")
# the sessions `one_face_session` chooses between for one face (`Int8Classifier.one_face`)
ONE_THREAD, MATRIX_PRODUCT, EVERY_CORE = "one thread", "one thread, matrix product", "every core"


def int8_path(weights: str | Path) -> Path:
    """Where the int8 twin of a .safetensors model lives: beside it, `<stem>.int8.onnx`."""
    weights = Path(weights)
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


def sample_faces(crops: np.ndarray, faces: int = CALIBRATION_FACES, seed: int = 0) -> np.ndarray:
    """`faces` of `crops` drawn with a fixed seed, in their original order."""
    pick = np.random.default_rng(seed).choice(len(crops), min(faces, len(crops)), replace=False)
    return crops[np.sort(pick)]


def calibration_splits(dataset: str | Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Training crops (for the activation ranges), validation crops (for the re-check margin) and the
    validation split's name, as training splits `dataset` (FER2013: Training, PublicTest)."""
    from ..data import load_dataset
    from ..data.splits import make_splits

    data = load_dataset(dataset)
    if data.usage is None or not np.isin(data.usage, TRAINING_USAGES).any():
        raise ConfigError(f"{dataset}: calibration needs a dataset with a training split (FER2013 "
                          "Training, or a train/ folder); test faces must not tune the model")
    splits = make_splits(data)
    val_usages = sorted(set(splits.val.usage.tolist())) if splits.val.usage is not None else []
    own_name = len(val_usages) == 1 and val_usages[0] not in TRAINING_USAGES
    val_name = val_usages[0] if own_name else "validation slice of the training split"
    return splits.train.images, splits.val.images, val_name


def choose_margin(fast_probs: np.ndarray, exact_labels: np.ndarray) -> tuple[float, float]:
    """The smallest re-check margin of MARGIN_GRID that keeps SAME_LABEL_FLOOR of the fp32 labels (the
    largest if none does), and the share kept at it."""
    gaps, flips = top_two_gap(fast_probs), fast_probs.argmax(1) != exact_labels
    kept = {m: 1.0 - float((flips & (gaps >= m)).mean()) for m in MARGIN_GRID}
    margin = next((m for m in MARGIN_GRID if kept[m] >= SAME_LABEL_FLOOR), MARGIN_GRID[-1])
    return margin, kept[margin]


def quantize(fp32_bytes: bytes, calibration: np.ndarray, info: ModelInfo,
             percentile: float = CALIBRATION_PERCENTILE) -> bytes:
    """Static QDQ int8 (per-channel weights, percentile activation ranges) of a float-input ferkit graph.

    Every layer, the one-channel stem too: kept in fp32 the stem itself runs several times faster, but
    converting its output between ONNX Runtime's fp32 and int8 memory layouts cost more than that saved
    (a one-off profile; BENCHMARKS.md, "Classifier speed").

    Weights use 7 of their 8 bits (`reduce_range`): on x86 CPUs without VNNI (AVX2, AVX-512 before VNNI)
    ONNX Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW, which adds each pair of
    products into 16 bits and clamps: with 8-bit weights a pair can reach 2·255·127 = 64,770 and the sums
    saturate (on an AVX2 CPU the 8-bit twin scored 62.3 % on FER2013 PrivateTest against fp32's 68.5 %;
    BENCHMARKS.md, "Classifier speed"). 7-bit weights keep every pair within
    2·255·64 = 32,640, so every CPU computes the same integers and the re-check margin holds everywhere.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = ((calibration[:, None].astype(np.float32) / 255.0 - info.mean) / info.std).astype(np.float32)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            # equal batches: the percentile calibrator cannot stack a ragged last one (its tail is dropped)
            size = min(128, len(x))
            self.batches = iter(x[i:i + size] for i in range(0, len(x) - size + 1, size))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    logging.getLogger("onnxruntime").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, out = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(fp32_bytes)
        quant_pre_process(str(source), str(prepared))
        # the percentile calibrator prints its progress; the quantiser warns on the root logger that the 1-D
        # weights of batch norms after dense layers (seed_cnn) have no per-channel axis 1, and quantises them
        # per tensor instead, which is right for them
        with contextlib.redirect_stdout(io.StringIO()), _root_log_level(logging.ERROR):
            quantize_static(str(prepared), str(out), Batches(), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": percentile})
        return out.read_bytes()


@contextlib.contextmanager
def _root_log_level(level: int):
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(before)


def with_uint8_quantized_input(int8_bytes: bytes, info: ModelInfo) -> bytes:
    """The int8 graph taking uint8 crops N×H×W straight into its first int8 layer.

    The normalisation (pixel/255 − mean)/std is an affine map of the pixel, so it *is* a uint8 quantisation:
    scale 1/(255·std), zero point 255·mean rounded (half a grey level off at most, as any rounding to
    uint8). That replaces four operators (cast, scale, shift, quantise) by one reshape: a few per cent at
    batch 256, more at batch 1. Graphs whose input feeds more than its quantiser get `with_uint8_input`.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load_from_string(int8_bytes)
    graph = proto.graph
    image = graph.input[0].name
    readers = [n for n in graph.node if image in n.input]
    if len(readers) != 1 or readers[0].op_type != "QuantizeLinear":
        return with_uint8_input(int8_bytes, info)
    quantizer = readers[0]
    exact = {quantizer.input[1]: np.array(1.0 / (255.0 * info.std), np.float32),
             quantizer.input[2]: np.array(round(255.0 * info.mean), np.uint8)}
    for i, tensor in enumerate(graph.initializer):
        if tensor.name in exact:
            graph.initializer[i].CopyFrom(numpy_helper.from_array(exact[tensor.name], tensor.name))
    position = list(graph.node).index(quantizer)
    graph.node.remove(quantizer)
    graph.initializer.append(helper.make_tensor("crops_channel_axis", TensorProto.INT64, [1], [1]))
    graph.node.insert(position, helper.make_node("Unsqueeze", ["crops", "crops_channel_axis"],
                                                 [quantizer.output[0]]))
    del graph.input[0]
    size = info.in_size
    graph.input.insert(0, helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", size, size]))
    return proto.SerializeToString()


def build_int8(weights: Path, calibration: np.ndarray, calibrated_on: str,
               validation: np.ndarray | None = None, validated_on: str = "",
               percentile: float = CALIBRATION_PERCENTILE) -> bytes:
    """The int8 twin of `weights` (.safetensors): uint8 crops in; logits, probabilities and each face's two
    best probabilities out (`with_probability_outputs`); its provenance in metadata.

    With `validation` crops, the re-check margin is chosen on them (`choose_margin`) and recorded.
    `percentile`: where the activation ranges clip (`benchmarks/int8_calibration.py` compares settings).
    """
    import onnx

    model, info = load_model(weights)
    fp32 = export_bytes(model, info)
    quantized = with_uint8_quantized_input(quantize(fp32, calibration, info, percentile), info)
    if info.num_classes >= 2:
        quantized = with_probability_outputs(quantized, info.num_classes)
    provenance = {"source_sha256": weights_sha256(weights), "calibrated_on": calibrated_on,
                  "calibration_faces": len(calibration), "calibration_percentile": percentile,
                  "recheck_margin": RECHECK_MARGIN}
    if validation is not None and len(validation):
        fast = OnnxClassifier(quantized, info).predict_proba(validation)
        exact = OnnxClassifier(with_uint8_input(fp32, info), info).predict_proba(validation)
        margin, kept = choose_margin(fast, exact.argmax(1))
        provenance |= {"recheck_margin": margin, "same_label_at_margin": round(kept, 5),
                       "margin_chosen_on": f"{validated_on}, {len(validation)} faces"}
    proto = onnx.load_from_string(quantized)
    onnx.helper.set_model_props(proto, {"ferkit": json.dumps(asdict(info)),
                                        INT8_PROPERTY: json.dumps(provenance)})
    return proto.SerializeToString()


def export_int8(weights: Path, out: Path, calibration_dataset: str | Path) -> Path:
    """Write the int8 twin of `weights`: activation ranges from the training split of `calibration_dataset`,
    the re-check margin chosen on its validation split (FER2013: Training, PublicTest)."""
    train, val, val_name = calibration_splits(calibration_dataset)
    name = Path(calibration_dataset).name
    twin = build_int8(weights, sample_faces(train), f"{name} training split", val, f"{name} {val_name}")
    write_bytes(out, twin)
    return out


def int8_problem(weights: str | Path) -> str | None:
    """Why `weights` has no usable int8 twin (missing, or made from other weights); None when it has one."""
    weights = Path(weights)
    twin = int8_path(weights)
    if not twin.is_file():
        return f"{weights}: no int8 model beside it ({twin.name}); make one with `ferkit export --int8`"
    return _twin_problem(weights, twin, read_onnx_file(twin)[1])


def _twin_problem(weights: Path, twin: Path, props: dict[str, str]) -> str | None:
    if INT8_PROPERTY not in props:
        return f"{twin}: not an int8 model written by `ferkit export --int8`"
    if json.loads(props[INT8_PROPERTY]).get("source_sha256") != weights_sha256(weights):
        return f"{twin}: made from other weights than {weights.name}; run `ferkit export --int8` again"
    return None


class Int8Classifier:
    """int8 ONNX Runtime for every face, fp32 again for the near-ties: a `FaceClassifier`.

    `single`, when given, is the int8 graph on one thread, for calls with one face: at batch 1 the work of
    each operator is small, and on the AMX Xeon one thread ran one face about 1.2× faster than two
    (`benchmarks/int8_threads.py`), and faster again with the deep convolutions on ONNX Runtime's
    matrix-product path (`with_matrix_product_convolutions`). From two faces on, `fast` was as fast or
    faster; the fp32 re-check was faster on every core even for one face, so it has no such twin.
    """

    def __init__(self, fast: OnnxClassifier, exact: OnnxClassifier, recheck_margin: float = RECHECK_MARGIN,
                 single: OnnxClassifier | None = None, one_face: str = ""):
        self.fast, self.exact, self.recheck_margin, self.single = fast, exact, recheck_margin, single
        self.one_face = one_face or (ONE_THREAD if single is not None else EVERY_CORE)  # for reports
        self.info = exact.info
        self.device = exact.device
        self.precision = "int8"
        self.rechecked = 0  # faces run again in fp32 so far

    @classmethod
    def load(cls, weights: str | Path, threads: int = 0, spinning: str = "in-run") -> Int8Classifier:
        """The int8 twin of `weights` (.safetensors) with the fp32 model for re-checks. The twin's one-channel
        stem runs on SpaceToDepth's 4 channels (`with_space_to_depth_stem`: the same integers, faster), and
        one face runs on the session this machine runs fastest (`one_face_session`).

        spinning: when idle ONNX Runtime threads busy-wait: "in-run", "never", "always" (`onnx_session`).
        """
        weights, twin = Path(weights), int8_path(weights)
        if not twin.is_file():
            raise ModelFileError(int8_problem(weights))
        proto, props = read_onnx_file(twin)  # read once: the check, the session and the margin
        if (problem := _twin_problem(weights, twin, props)) is not None:
            raise ModelFileError(problem)
        info = ModelInfo(**json.loads(props["ferkit"]))
        graph = with_space_to_depth_stem(proto)
        fast = OnnxClassifier(graph.SerializeToString(), info, threads, "int8", spinning)
        single, one_face = one_face_session(graph, fast, spinning)
        margin = json.loads(props[INT8_PROPERTY]).get("recheck_margin", RECHECK_MARGIN)
        return cls(fast, OnnxClassifier.load(weights, threads, spinning), margin, single, one_face)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self._run(crops, batch_size)[0]

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self._run(crops, batch_size)[1]

    def _run(self, crops: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Logits and probabilities, the near-ties' from fp32. The twin's graph gives the probabilities and
        each face's two best (`with_probability_outputs`); an older twin's are computed here."""
        crops = resize_crops(np.asarray(crops, dtype=np.uint8), self.info.in_size)
        one_by_one = len(crops) == 1 or batch_size == 1
        fast = self.single if one_by_one and self.single is not None else self.fast
        outputs = fast.outputs(crops, batch_size)
        z, probs, top2 = outputs if fast.gives_probs else (outputs[0], softmax(outputs[0]), None)
        near_tie = self._near_ties(probs, top2)
        if not len(near_tie):
            return z, probs
        self.rechecked += len(near_tie)
        if len(near_tie) == len(crops):  # one face, or every face: no rows to splice
            return self._exact(crops, batch_size)
        z[near_tie], probs[near_tie] = self._exact(crops[near_tie], batch_size)
        return z, probs

    def _exact(self, crops: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """fp32 logits and probabilities, the probabilities from the graph where it gives them."""
        outputs = self.exact.outputs(crops, batch_size)
        return outputs[0], outputs[1] if self.exact.gives_probs else softmax(outputs[0])

    def _near_ties(self, probs: np.ndarray, top2: np.ndarray | None) -> np.ndarray | list[int]:
        """Rows whose two best probabilities are closer than the margin. One face is tested on Python floats:
        right after an ONNX Runtime run each NumPy call costs microseconds, a few per cent of a face's time
        (BENCHMARKS.md, "Where one face's time goes")."""
        if top2 is None:  # a twin without probability outputs
            return np.flatnonzero(top_two_gap(probs) < self.recheck_margin)
        if len(top2) == 1:
            return [0] if top2.item(0) - top2.item(1) < self.recheck_margin else []
        return np.flatnonzero(top2[:, 0] - top2[:, 1] < self.recheck_margin)


def one_face_session(graph: onnx.ModelProto, fast: OnnxClassifier,
                     spinning: str = "in-run") -> tuple[OnnxClassifier | None, str]:
    """The session that classifies one face fastest on this machine (None where that is `fast` itself), and
    which it is: ONE_THREAD, MATRIX_PRODUCT or EVERY_CORE.

    The candidates: the twin's graph on one thread (where `fast` has more), and on one thread with its deep
    convolutions on the matrix-product path (`with_matrix_product_convolutions`, where the graph has any).
    All give the same outputs; which one is fastest depends on the CPU, so it is timed, not guessed.
    """
    graphs = {ONE_THREAD: graph} if fast.threads > 1 else {}
    matrix_product = with_matrix_product_convolutions(graph)
    if matrix_product != graph:
        graphs[MATRIX_PRODUCT] = matrix_product
    candidates = {name: OnnxClassifier(g.SerializeToString(), fast.info, 1, "int8", spinning)
                  for name, g in graphs.items()}
    if not candidates:
        return None, EVERY_CORE
    names = list(candidates)
    best = fastest_on_one_face([*candidates.values(), fast])
    return (candidates[names[best]], names[best]) if best < len(names) else (None, EVERY_CORE)


def fastest_on_one_face(engines: list[OnnxClassifier], runs: int = 15) -> int:
    """Which of `engines` classifies one face fastest on this machine: its index, by the median of `runs`
    interleaved runs each (about 5 ms an engine)."""
    face = np.zeros((1, engines[0].info.in_size, engines[0].info.in_size), np.uint8)
    times: list[list[float]] = [[] for _ in engines]
    for turn in range(runs + 3):  # the first three warm up
        for which, engine in enumerate(engines):
            start = time.perf_counter()
            engine.outputs(face)
            if turn >= 3:
                times[which].append(time.perf_counter() - start)
    return int(np.argmin([np.median(t) for t in times]))


def top_two_gap(probs: np.ndarray) -> np.ndarray:
    """Per row, the best probability minus the second best."""
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top = np.partition(probs, -2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]
