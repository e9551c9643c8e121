"""One thread or every core for the int8 engine's sessions, per batch size: why one face runs on one thread.

    .venv/bin/python benchmarks/int8_threads.py [--seconds 1]

faces/s through `predict_proba` of the bundled model's int8 twin alone and of its fp32 graph (the
re-check), each as a one-thread and as a two-thread ONNX Runtime session, then the twin with its deep
convolutions on the matrix-product path (`with_matrix_product_convolutions`) the same two ways, on 256
FER2013 PrivateTest faces cut into batches of 1 to 256, one session after another (compare within a run).
`Int8Classifier.load` makes the same comparison for one face when it loads (`one_face_session`) and keeps
the fastest.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from machine import cpu_line

from ferkit.data import load_dataset
from ferkit.models.files import ModelInfo, bundled_model_path
from ferkit.models.int8 import int8_path
from ferkit.models.onnx import (
    OnnxClassifier,
    read_onnx_file,
    with_matrix_product_convolutions,
    with_space_to_depth_stem,
)

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
BATCHES = (1, 2, 4, 8, 16, 32, 256)


def rate(engine: OnnxClassifier, faces, batch: int, seconds: float) -> float:
    engine.predict_proba(faces[:batch])  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for first in range(0, len(faces), batch):
            engine.predict_proba(faces[first:first + batch])
        done += len(faces)
    return done / (time.perf_counter() - start)


def matrix_product_sessions(weights: Path) -> dict[str, OnnxClassifier]:
    """The int8 twin as the engine loads it with its deep convolutions on ONNX Runtime's matrix-product path
    (`with_matrix_product_convolutions`), on one and on two threads."""
    proto, props = read_onnx_file(int8_path(weights))
    graph = with_matrix_product_convolutions(with_space_to_depth_stem(proto)).SerializeToString()
    info = ModelInfo(**json.loads(props["ferkit"]))
    return {f"int8 twin, matrix-product convolutions, {threads} thread{'s' * (threads > 1)}":
            OnnxClassifier(graph, info, threads, "int8") for threads in (1, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per session and batch size")
    args = parser.parse_args()
    faces = load_dataset(DATASETS / "fer2013").where_usage("PrivateTest").images[:256]
    weights = bundled_model_path()
    engines = {f"{kind}, {threads} thread{'s' * (threads > 1)}": OnnxClassifier.load(path, threads=threads)
               for kind, path in (("int8 twin", int8_path(weights)), ("fp32", weights)) for threads in (1, 2)}
    engines |= matrix_product_sessions(weights)
    print(f"{cpu_line()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| session | " + " | ".join(f"batch {b}" for b in BATCHES) + " |")
    print("|---|" + "---|" * len(BATCHES))
    for name, engine in engines.items():
        row = [rate(engine, faces, batch, args.seconds) for batch in BATCHES]
        print(f"| {name} | " + " | ".join(f"{r:,.0f}" for r in row) + " |")


if __name__ == "__main__":
    main()
