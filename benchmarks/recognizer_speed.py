"""Speed and fp32 agreement of every engine that runs the bundled model, and the photo → faces pipeline.

    .venv/bin/python benchmarks/recognizer_speed.py [--seconds 4] [--quick] [--model wild|MODEL.safetensors]

Throughput is faces/s on uint8 48×48 FER2013 crops through each engine's `predict_proba` (normalisation
included), at batch 1 (256 faces in turn) and 256, best window of each; the engines take turns window by
window, so load from other work hits them alike. Agreement is against PyTorch fp32 on PrivateTest (3,589
faces): same label, max |Δp|, accuracy. The int8 re-check margin is chosen on PublicTest by `ferkit export
--int8` (the validation split, as for every other choice); the margin table shows that choice and what it
gives on PrivateTest. `--quick`: the first 500 faces of each split, 0.6 s per engine and batch (a minute).
`--model`: another model instead of the default: the bundled `wild`, or a trained one with its int8 twin
beside it (`ferkit export --model M --int8 --calibration FER2013_DIR`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from machine import cpu_line

from ferkit.data import load_dataset
from ferkit.errors import ModelFileError
from ferkit.faces import DEFAULT_DETECTOR
from ferkit.models import load_classifier, resolve
from ferkit.models.classifier import Classifier
from ferkit.models.files import load_model
from ferkit.models.int8 import MATRIX_PRODUCT, SAME_LABEL_FLOOR, Int8Classifier, int8_path, top_two_gap
from ferkit.models.onnx import (
    OnnxClassifier,
    export_bytes,
    with_matrix_product_convolutions,
    with_space_to_depth_stem,
)
from ferkit.predict import Recognizer

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
WINDOWS = 5
MARGINS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03)


def engines(path: Path) -> dict[str, object]:
    """Every way ferkit can run the model, named as in the table."""
    model, info = load_model(path)
    return {
        "PyTorch fp32 (`--backend torch`)": Classifier.load(path, device="cpu", precision="fp32"),
        "PyTorch bf16 + channels-last (`Classifier(precision=\"bf16\")`)":
            Classifier.load(path, device="cpu", precision="bf16"),
        "ORT fp32, NumPy normalisation (an exported .onnx file)":
            OnnxClassifier(export_bytes(model, info), info),
        "ORT fp32, uint8 input (`--backend onnx`)": OnnxClassifier.load(path),
        f"ORT int8 alone (`{int8_path(path).name}` as a file)": OnnxClassifier.load(int8_path(path)),
        "ORT int8 + fp32 re-check of near-ties (`--backend int8`, auto)": Int8Classifier.load(path),
        "the same with the model's temperature (`load_classifier`, what `Recognizer` runs)":
            load_classifier(path, backend="int8"),
        "ORT int8 + re-check, one face with every convolution on the direct kernels (ferkit's before)":
            direct_kernels(path),
        "ORT int8 + re-check, one face on every core too (ferkit's before)":
            every_core(Int8Classifier.load(path)),
        "ORT int8 + re-check, the stem on one input channel (ferkit's before)": one_channel_stem(path),
        "ORT int8 + re-check, softmax and top two in NumPy (ferkit's twin before)": logits_only_twin(path),
        "ORT fp32, idle threads sleep even within a run (ferkit's before)":
            OnnxClassifier.load(path, spinning="never"),
        "ORT int8 + re-check, idle threads sleep even within a run (ferkit's before)":
            every_core(Int8Classifier.load(path, spinning="never")),
        "ORT int8 + re-check, idle threads busy-wait after each run too (ORT's default)":
            every_core(Int8Classifier.load(path, spinning="always")),
    }


def every_core(engine: Int8Classifier) -> Int8Classifier:
    """The engine without its one-thread session for one face: every call runs on every core."""
    return Int8Classifier(engine.fast, engine.exact, engine.recheck_margin)


def direct_kernels(path: Path) -> Int8Classifier:
    """The default engine with its one-face session (if it has one) on the twin without
    `with_matrix_product_convolutions`: every convolution on ONNX Runtime's direct int8 kernels."""
    import onnx

    proto = with_space_to_depth_stem(onnx.load_from_string(int8_path(path).read_bytes()))
    return with_twin_graph(Int8Classifier.load(path), proto, matrix_product=False)


def logits_only_twin(path: Path) -> Int8Classifier:
    """The default engine with a twin whose graph ends at the logits, as ferkit's twins did before
    `with_probability_outputs`: softmax and top-two search then run in NumPy on every call."""
    import onnx

    proto = with_space_to_depth_stem(onnx.load_from_string(int8_path(path).read_bytes()))
    del proto.graph.output[1:]
    return with_twin_graph(Int8Classifier.load(path), proto)


def one_channel_stem(path: Path) -> Int8Classifier:
    """The default engine running the twin as stored, its stem convolution on the one-channel crop, as
    before `with_space_to_depth_stem`."""
    import onnx

    return with_twin_graph(Int8Classifier.load(path), onnx.load_from_string(int8_path(path).read_bytes()))


def with_twin_graph(engine: Int8Classifier, proto, matrix_product: bool = True) -> Int8Classifier:
    """`engine` with its int8 sessions on the graph `proto`: every core, and one thread for one face if it has
    that, with the deep convolutions on the matrix-product path where the engine chose it (and
    `matrix_product`), so that each "before" row differs from the engine in one change only."""
    fast = OnnxClassifier(proto.SerializeToString(), engine.info, precision="int8")
    if matrix_product and engine.one_face == MATRIX_PRODUCT:
        proto = with_matrix_product_convolutions(proto)
    single = OnnxClassifier(proto.SerializeToString(), engine.info, threads=1, precision="int8") if (
        engine.single) else None
    return Int8Classifier(fast, engine.exact, engine.recheck_margin, single)


def interleaved_rates(runs: dict[str, Callable[[], object]], items: int, seconds: float) -> dict[str, float]:
    """Faces/s of each run: the best of WINDOWS windows, the runs taking turns window by window."""
    for fn in runs.values():
        fn(), fn()  # warm-up: kernels are chosen on the first calls
    best = dict.fromkeys(runs, 0.0)
    for _ in range(WINDOWS):
        for name, fn in runs.items():
            n, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds / WINDOWS:
                fn()
                n += items
            best[name] = max(best[name], n / elapsed)
    return best


def one_face_at_a_time(classifier, crops: np.ndarray) -> Callable[[], object]:
    """Batch 1 over 256 different faces in turn: the int8 engine re-runs near-ties, so one repeated face
    would measure either only the fast path or only the re-check."""
    faces = itertools.cycle(crops[i:i + 1] for i in range(256))
    return lambda: classifier.predict_proba(next(faces))


def speed_rows(classifiers: dict[str, object], crops: np.ndarray, seconds: float) -> dict[str, tuple]:
    one = interleaved_rates({k: one_face_at_a_time(c, crops) for k, c in classifiers.items()}, 1, seconds)
    many = interleaved_rates({k: (lambda c=c: c.predict_proba(crops[:256])) for k, c in classifiers.items()},
                             256, seconds)
    return {k: (one[k], many[k]) for k in classifiers}


def agreement_rows(classifiers: dict[str, object], faces: np.ndarray, labels: np.ndarray) -> dict[str, tuple]:
    """Per engine: same label as PyTorch fp32 (the first engine), max |Δp|, accuracy."""
    probs = {k: c.predict_proba(faces) for k, c in classifiers.items()}
    reference = next(iter(probs.values()))
    return {k: (int((p.argmax(1) != reference.argmax(1)).sum()), np.abs(p - reference).max(),
                (p.argmax(1) == labels).mean()) for k, p in probs.items()}


def margin_table(path: Path, public: np.ndarray, private: np.ndarray) -> list[str]:
    """The re-check margin's effect: faces run again in fp32 and labels kept, on PublicTest (where
    `ferkit export --int8` chooses the margin) and PrivateTest (which reports it)."""
    fast, exact = OnnxClassifier.load(int8_path(path)), OnnxClassifier.load(path)
    chosen = Int8Classifier.load(path).recheck_margin
    lines = ["| margin | PublicTest: re-run | PublicTest: same label | PrivateTest: re-run "
             "| PrivateTest: same label |", "|---|---|---|---|---|"]
    outputs = [(fast.predict_proba(x), exact.predict_proba(x)) for x in (public, private)]
    for margin in sorted({*MARGINS, chosen}):
        cells = []
        for q, r in outputs:
            rerun = top_two_gap(q) < margin
            differ = int(((q.argmax(1) != r.argmax(1)) & ~rerun).sum())
            cells += [f"{rerun.mean():.2%}", f"{1 - differ / len(q):.2%} ({differ} differ)"]
        name = f"**{margin:.4g}** (chosen)" if margin == chosen else f"{margin:.4g}"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def machine() -> str:
    return (f"{cpu_line()}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"onnxruntime {ort.__version__}")


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def pipeline_lines(recognizer: Recognizer) -> list[str]:
    lines = []
    for photo in ("angry_man.jpg", "crying_woman.jpg"):
        image = str(DATASETS / "photos" / photo)
        recognizer(image)
        start = time.perf_counter()
        for _ in range(5):
            result = recognizer(image)
        faces, timing = result.faces, result.timing
        lines.append(f"- `recognizer({photo})`: {(time.perf_counter() - start) / 5 * 1000:.0f} ms "
                     f"(last run: detect {timing['detect']:.1f} ms, classify {timing['classify']:.2f} ms), "
                     f"{len(faces)} face(s): {', '.join(f.label for f in faces)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per engine and batch size")
    parser.add_argument("--quick", action="store_true", help="small subsets, short windows (about a minute)")
    parser.add_argument("--model", help="a bundled model's name, a run directory or a .safetensors file with "
                        "an int8 twin beside it (default: the default bundled model)")
    args = parser.parse_args()
    try:
        path = resolve(args.model).weights()
    except ModelFileError as error:
        parser.error(str(error))
    if not int8_path(path).is_file():
        parser.error(f"{int8_path(path)} is missing: make it with `ferkit export --model {args.model} "
                     "--int8 --calibration FER2013_DIR`")
    seconds, faces = (0.6, 500) if args.quick else (args.seconds, None)
    torch.set_num_threads(os.cpu_count() or 1)
    data = load_dataset(DATASETS / "fer2013")
    public, private = (data.where_usage(split).subset(slice(0, faces))
                       for split in ("PublicTest", "PrivateTest"))
    classifiers = engines(path)
    print(f"model {args.model or 'default'} ({path.name}); {machine()}; {load_average()} at the start\n")
    speed = speed_rows(classifiers, private.images, seconds)
    agree = agreement_rows(classifiers, private.images, private.labels)
    print(f"faces/s (best of {WINDOWS} interleaved windows, {seconds:g} s per engine and batch); agreement "
          f"with PyTorch fp32 on {len(private):,} PrivateTest faces\n")
    print("| engine | batch 1 | batch 256 | same label | max \\|Δp\\| | PrivateTest accuracy |")
    print("|---|---|---|---|---|---|")
    for name in classifiers:
        (one, many), (differ, dp, acc) = speed[name], agree[name]
        same = f"{1 - differ / len(private):.2%} ({differ} differ)"
        print(f"| {name} | {one:,.0f} | {many:,.0f} | {same} | {dp:.1e} | {acc:.2%} |")
    engine = next(c for c in classifiers.values() if isinstance(c, Int8Classifier))
    print(f"\nthe int8 engine's session for one face, as timed when it loaded here: {engine.one_face}")
    print(f"\nint8 re-check margin on {len(public):,} PublicTest faces (chosen there: the smallest keeping "
          f"{SAME_LABEL_FLOOR:.1%} of the labels) and {len(private):,} PrivateTest faces:\n")
    print("\n".join(margin_table(path, public.images, private.images)))
    print(f"\nwhole pipeline, `Recognizer()` (auto engine, default detector: {DEFAULT_DETECTOR}):")
    print("\n".join(pipeline_lines(Recognizer(args.model))))
    print(f"\n{load_average()} at the end")


if __name__ == "__main__":
    main()
