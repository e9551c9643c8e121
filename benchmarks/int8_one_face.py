"""Where the time of one face goes in the default engine at batch 1 (the issue asks for 5,000 faces/s).

    .venv/bin/python benchmarks/int8_one_face.py [--seconds 3]

Five tables for the bundled model's int8 twin on one thread, one FER2013 PrivateTest face per call:
1. the graph alone (`InferenceSession.run`, the graph the engine runs for one face:
   `with_space_to_depth_stem`, and `with_matrix_product_convolutions` where the engine chose it when it
   loaded) under each ONNX Runtime session option that could matter for a small graph (optimisation
   level, memory arena, memory patterns, denormals; ferkit's session first), then with every convolution on
   the direct kernels, and the twin as stored, taking turns window by window;
2. ORT's own profile of that run: microseconds per operator type, per face, summed over the graph's nodes
   (the profiler adds its own cost, so the total is above table 1's);
3. each convolution under the same profiler on ONNX Runtime's direct int8 kernels and on its im2col +
   matrix-product path (`with_matrix_product_convolutions` with every convolution switched), beside its
   inputs per output: which convolutions the engine switches;
4. the engine's layers, from the bare graph to `Int8Classifier.predict_proba` on 256 faces in turn, each
   row adding one layer: input checks and output lists, the near-tie test, the fp32 re-check of the faces
   whose two best classes are closer than the margin (the share of such faces is printed);
5. the graph's arithmetic rate against ONNX Runtime's own int8 matrix product (MatMulInteger, uint8 × int8,
   1024³) on the same one thread: how close one face already runs to what this CPU does in int8.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from machine import cpu_line
from recognizer_speed import interleaved_rates

from ferkit.data import load_dataset
from ferkit.models.files import bundled_model_path, load_model
from ferkit.models.int8 import MATRIX_PRODUCT, Int8Classifier, int8_path, top_two_gap
from ferkit.models.onnx import read_onnx_file, with_matrix_product_convolutions, with_space_to_depth_stem
from ferkit.onnx_session import cpu_session
from ferkit.summary import count_flops

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def session_variants(graph: bytes, direct: bytes, stored: bytes) -> dict[str, ort.InferenceSession]:
    """ferkit's one-thread session, then the same with one option changed, then the graph with every
    convolution on the direct kernels (before `with_matrix_product_convolutions`), then the twin as stored
    (its stem convolution on the one-channel crop, before `with_space_to_depth_stem` too)."""
    def changed(change: Callable[[ort.SessionOptions], None]) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        change(options)
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    level = ort.GraphOptimizationLevel
    return {
        "ferkit's session (all graph optimisations)": cpu_session(graph, threads=1),
        "extended optimisations only (no layout changes)":
            changed(lambda o: setattr(o, "graph_optimization_level", level.ORT_ENABLE_EXTENDED)),
        "no memory arena": changed(lambda o: setattr(o, "enable_cpu_mem_arena", False)),
        "no memory patterns": changed(lambda o: setattr(o, "enable_mem_pattern", False)),
        "denormals as zero":
            changed(lambda o: o.add_session_config_entry("session.set_denormal_as_zero", "1")),
        "every convolution on the direct kernels (ferkit's before)": cpu_session(direct, threads=1),
        "the twin as stored: stem on one input channel too (ferkit's before that)":
            cpu_session(stored, threads=1),
    }


def options_table(graph: bytes, direct: bytes, stored: bytes, face: np.ndarray, seconds: float) -> list[str]:
    sessions = session_variants(graph, direct, stored)
    name = next(iter(sessions.values())).get_inputs()[0].name
    runs = {k: (lambda s=s: s.run(None, {name: face})) for k, s in sessions.items()}
    rates = interleaved_rates(runs, 1, seconds)
    return ["| session (1 thread, one face) | faces/s | µs per face |", "|---|---|---|"] + [
        f"| {k} | {r:,.0f} | {1e6 / r:.0f} |" for k, r in rates.items()]


def node_times(graph: bytes, face: np.ndarray, runs: int = 2000) -> tuple[dict[str, float], dict[str, str]]:
    """ORT's profile of `runs` one-face runs on one thread: µs per face of each node, and its op type."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: face}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, float] = defaultdict(float)
    kinds: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"].removesuffix("_kernel_time")
            times[name] += event["dur"] / runs
            kinds[name] = event["args"].get("op_name", "?")
    return dict(times), kinds


def operator_table(graph: bytes, face: np.ndarray) -> list[str]:
    """µs per face by operator type under ORT's profiler, largest first."""
    times, kinds = node_times(graph, face)
    per_type: dict[str, float] = defaultdict(float)
    nodes: dict[str, set] = defaultdict(set)
    for name, us in times.items():
        per_type[kinds[name]] += us
        nodes[kinds[name]].add(name)
    total = sum(per_type.values())
    lines = ["| operator | nodes | µs per face | share |", "|---|---|---|---|"]
    lines += [f"| {kind} | {len(nodes[kind])} | {us:.1f} | {us / total:.0%} |"
              for kind, us in sorted(per_type.items(), key=lambda kv: -kv[1])]
    return lines + [f"| all (under the profiler) | {sum(len(n) for n in nodes.values())} | {total:.1f} | |"]


def convolution_table(stem: onnx.ModelProto, face: np.ndarray) -> list[str]:
    """Each convolution's µs per face under ORT's profiler on the direct kernels and on the matrix-product
    path (every convolution switched, `min_depth=0`), with its inputs per output: where the path pays."""
    direct, _ = node_times(stem.SerializeToString(), face)
    switched, _ = node_times(with_matrix_product_convolutions(stem, min_depth=0).SerializeToString(), face)
    weights = {t.name: t.dims for t in stem.graph.initializer}
    producers = {out: node for node in stem.graph.node for out in node.output}
    lines = ["| convolution | inputs per output | direct kernels, µs | matrix product, µs |",
             "|---|---|---|---|"]
    for conv in (n for n in stem.graph.node if n.op_type == "Conv"):
        depth = int(np.prod(weights[producers[conv.input[1]].input[0]][1:]))
        us = [next((t for k, t in times.items() if k.split("_token")[0] == conv.name), None)
              for times in (direct, switched)]
        if None not in us:
            lines.append(f"| {conv.name} | {depth:,} | {us[0]:.1f} | {us[1]:.1f} |")
    return lines


def layers_table(engine: Int8Classifier, faces: np.ndarray, seconds: float) -> list[str]:
    single = engine.single or engine.fast
    gaps = top_two_gap(single.outputs(faces)[1])
    clear = faces[gaps >= engine.recheck_margin]
    in_turn = {"clear": itertools.cycle(clear[i:i + 1] for i in range(len(clear))),
               "all": itertools.cycle(faces[i:i + 1] for i in range(len(faces)))}
    feed = {single.input_name: np.ascontiguousarray(faces[:1])}
    runs = {
        "the graph alone (`InferenceSession.run`, one face)": lambda: single.session.run(None, feed),
        "+ ferkit's input and output handling (`OnnxClassifier.outputs`)": lambda: single.outputs(faces[:1]),
        "+ the near-tie test, faces that need no re-check (`predict_proba`)":
            lambda: engine.predict_proba(next(in_turn["clear"])),
        "+ the fp32 re-check, 256 faces in turn (the default engine at batch 1)":
            lambda: engine.predict_proba(next(in_turn["all"])),
    }
    rates = interleaved_rates(runs, 1, seconds)
    lines = ["| what runs | faces/s | µs per face |", "|---|---|---|"]
    lines += [f"| {k} | {r:,.0f} | {1e6 / r:.0f} |" for k, r in rates.items()]
    return lines + ["", f"near-ties re-checked in fp32: {(gaps < engine.recheck_margin).mean():.1%} of the "
                        f"{len(faces)} faces (margin {engine.recheck_margin}); "
                        f"session for one face: {engine.one_face}"]


def arithmetic_table(graphs: dict[str, bytes], face: np.ndarray, macs: int, runs: int = 10) -> list[str]:
    """Operations per second (a multiply-add is two) of a 1024³ MatMulInteger and of each graph on one face,
    each the best of `runs` timed calls on one thread."""
    from onnx import TensorProto, helper, numpy_helper

    n = 1024
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    b = numpy_helper.from_array(rng.integers(-64, 64, (n, n), dtype=np.int8), "b")
    matmul = helper.make_model(
        helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "peak",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])], [b]),
        opset_imports=[helper.make_opsetid("", 17)])
    jobs = {"MatMulInteger, 1024 × 1024 × 1024 (uint8 × int8)": (cpu_session(matmul.SerializeToString(), 1),
                                                                 {"a": a}, n ** 3, 1)}
    jobs |= {f"{label}, one face ({macs / 1e6:.1f} M multiply-adds)": (cpu_session(graph, 1), {"crops": face},
                                                                       macs, 200)
             for label, graph in graphs.items()}
    lines = ["| one thread | GOPS (2 per multiply-add) |", "|---|---|"]
    for label, (session, feed, work, repeat) in jobs.items():
        session.run(None, feed)
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(repeat):
                session.run(None, feed)
            best = min(best, (time.perf_counter() - start) / repeat)
        lines.append(f"| {label} | {2 * work / best / 1e9:,.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per row of the timed tables")
    args = parser.parse_args()
    faces = load_dataset(DATASETS / "fer2013").where_usage("PrivateTest").images[:256]
    weights = bundled_model_path()
    stored = int8_path(weights).read_bytes()
    stem = with_space_to_depth_stem(read_onnx_file(int8_path(weights))[0])
    engine = Int8Classifier.load(weights)
    matrix_product = engine.one_face == MATRIX_PRODUCT
    graph = (with_matrix_product_convolutions(stem) if matrix_product else stem).SerializeToString()
    face = np.ascontiguousarray(faces[:1])
    print(f"{cpu_line()}; onnxruntime {ort.__version__}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; the engine's session for one face, as timed "
          f"when it loaded here: {engine.one_face}\n")
    print("\n".join(options_table(graph, stem.SerializeToString(), stored, face, args.seconds)) + "\n")
    print("\n".join(operator_table(graph, face)) + "\n")
    print("\n".join(convolution_table(stem, face)) + "\n")
    print("\n".join(layers_table(engine, faces, args.seconds)) + "\n")
    model, info = load_model(weights)
    macs = count_flops(model, info.in_size, info.in_channels)
    print("\n".join(arithmetic_table({"the twin's graph as the engine runs it": graph,
                                       "the same, every convolution on the direct kernels":
                                           stem.SerializeToString()},
                                      face, macs)))


if __name__ == "__main__":
    main()
