"""Would OpenVINO run the bundled models' int8 engine faster than ONNX Runtime? One run, both engines.

    .venv/bin/python benchmarks/openvino_engine.py [--seconds 6] [--model default,wild] [--quick]

OpenVINO is not a ferkit dependency (it is about 180 MB). The benchmark installs it once into
`benchmarks/.openvino` (`pip install --target`, no dependencies: it needs only NumPy, which ferkit has);
if that fails, it says why and prints ONNX Runtime's figures alone.

For each bundled model, ferkit's int8 engine (`Int8Classifier`: the int8 twin for every face, the fp32
graph on ONNX Runtime again for near-ties) is run twice, with the int8 graph on ONNX Runtime (what ferkit
ships) and the same graph compiled by OpenVINO for the CPU: a static one-face model for batch 1, on the
faster of one or two threads as ferkit picks its one-face session, and a dynamic batch otherwise; inputs
shared, not copied. Batch 1 walks 256 FER2013 PrivateTest faces in turn, batch 256 takes them at once,
the engines taking turns window by window (`recognizer_speed.speed_rows`). Agreement: the share of
PrivateTest faces given PyTorch fp32's label, and accuracy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from machine import cpu_line
from recognizer_speed import agreement_rows, speed_rows

from ferkit.data import load_dataset
from ferkit.models.classifier import Classifier
from ferkit.models.files import BUNDLED_MODELS, ModelInfo, bundled_model_path
from ferkit.models.int8 import Int8Classifier, fastest_on_one_face, int8_path
from ferkit.models.onnx import OnnxClassifier, read_onnx_file

HERE = Path(__file__).resolve().parent
TARGET = HERE / ".openvino"
PACKAGES = ("openvino==2026.4.1", "openvino-telemetry")
DATASETS = Path(os.environ.get("FERKIT_DATASETS", HERE.parents[1] / "shared" / "datasets"))


def import_openvino():
    """The openvino module, installed into benchmarks/.openvino on first use; None and why if it cannot be."""
    sys.path.insert(0, str(TARGET))
    try:
        return importlib.import_module("openvino"), ""
    except ImportError:
        pass
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                             str(TARGET), *PACKAGES], capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return None, f"pip could not install OpenVINO: {lines[-1] if lines else 'no message'}"
    importlib.invalidate_caches()  # the failed import above cached the folder's old listing
    try:
        return importlib.import_module("openvino"), ""
    except ImportError as error:
        return None, f"OpenVINO installed but does not import: {error}"


class OpenVinoGraph(OnnxClassifier):
    """An int8 twin's graph compiled by OpenVINO, with `OnnxClassifier`'s `outputs` (what `Int8Classifier`
    calls). one_face: a static one-face model (the counterpart of ferkit's one-thread session)."""

    def __init__(self, ov, graph: bytes, info: ModelInfo, threads: int, one_face: bool):
        core = ov.Core()
        model = core.read_model(graph, b"")
        side = info.in_size
        model.reshape([1 if one_face else -1, side, side])
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.gives_probs = [o.get_any_name() for o in self.compiled.outputs][1:] == ["probs", "top2"]
        self.info, self.threads, self.precision, self.takes_uint8 = info, threads, "int8", True

    def outputs(self, crops: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
        crops = np.ascontiguousarray(crops, dtype=np.uint8)
        parts = [self.request.infer({0: crops[i:i + batch_size]}, share_inputs=True).to_tuple()
                 for i in range(0, len(crops), batch_size)]
        if len(parts) == 1:
            return [np.array(out) for out in parts[0]]
        return [np.concatenate(outs) for outs in zip(*parts)]


def engines(ov, name: str) -> dict[str, Int8Classifier]:
    weights = bundled_model_path(name)
    ours = Int8Classifier.load(weights)
    result = {"ONNX Runtime (ferkit's engine)": ours}
    if ov is not None:
        proto, _ = read_onnx_file(int8_path(weights))
        graph, info = proto.SerializeToString(), ours.info
        fast = OpenVinoGraph(ov, graph, info, ours.fast.threads, one_face=False)
        one, two = (OpenVinoGraph(ov, graph, info, n, one_face=True) for n in (1, 2))
        single = (one, two)[fastest_on_one_face([one, two])]  # as ferkit picks its one-face session
        result["OpenVINO"] = Int8Classifier(fast, ours.exact, ours.recheck_margin, single)
    return result


def model_rows(ov, name: str, crops: np.ndarray, labels: np.ndarray, seconds: float) -> list[str]:
    classifiers = engines(ov, name)
    speeds = speed_rows(classifiers, crops, seconds)
    fp32 = Classifier.load(bundled_model_path(name), device="cpu", precision="fp32")
    agreement = agreement_rows({"fp32": fp32, **classifiers}, crops, labels)
    rows = []
    for k, c in classifiers.items():
        threads = c.single.threads if c.single is not None else c.fast.threads
        (one, many), (differ, _, accuracy) = speeds[k], agreement[k]
        rows.append(f"| {name} | {k} | {threads} | {one:,.0f} | {many:,.0f} | "
                    f"{1 - differ / len(crops):.2%} | {accuracy:.2%} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="timing per engine and batch size")
    parser.add_argument("--model", default=",".join(BUNDLED_MODELS), help="bundled models, comma-separated")
    parser.add_argument("--quick", action="store_true", help="512 faces and 1 s per timing")
    args = parser.parse_args()
    names = args.model.split(",")
    if unknown := [n for n in names if n not in BUNDLED_MODELS]:
        parser.error(f"--model: unknown {unknown}; bundled: {', '.join(BUNDLED_MODELS)}")
    ov, why = import_openvino()
    test = load_dataset(DATASETS / "fer2013").where_usage("PrivateTest")
    count = 512 if args.quick else len(test.images)
    crops, labels = test.images[:count], test.labels[:count]
    seconds = 1.0 if args.quick else args.seconds
    print(cpu_line())
    print(f"OpenVINO {ov.__version__}" if ov is not None else f"OpenVINO: not measured ({why})")
    print(f"{len(crops)} FER2013 PrivateTest faces; {seconds:g} s per engine and batch size\n")
    print("| model | int8 graph run by | threads, one face | faces/s, batch 1 | faces/s, batch 256 | "
          "same label as fp32 | PrivateTest accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        for row in model_rows(ov, name, crops, labels, seconds):
            print(row, flush=True)


if __name__ == "__main__":
    main()
