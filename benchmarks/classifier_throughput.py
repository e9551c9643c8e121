"""Faces per second of each registered model: PyTorch fp32, bf16 autocast + channels_last, ONNX Runtime.

    .venv/bin/python benchmarks/classifier_throughput.py [--models a,b] [--batch 1,256] [--seconds 3]

Each measurement runs for --seconds, split into windows; the best window is reported, which
keeps the numbers meaningful on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import torch
from machine import cpu_line

from ferkit.models import create_model, list_models
from ferkit.summary import count_flops

WINDOWS = 5
IN_SIZE = 48


def faces_per_second(fn: Callable[[torch.Tensor], object], x: torch.Tensor, seconds: float) -> float:
    fn(x), fn(x)  # warm-up: oneDNN / ORT pick and compile kernels on the first calls
    best = 0.0
    for _ in range(WINDOWS):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / WINDOWS:
            fn(x)
            n += len(x)
        best = max(best, n / elapsed)
    return best


def onnx_session(model: torch.nn.Module, path: Path, threads: int) -> ort.InferenceSession:
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.zeros(1, 1, IN_SIZE, IN_SIZE),), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
        )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runners(name: str, threads: int, tmp: Path) -> dict[str, Callable[[torch.Tensor], object]]:
    """The three ways to run `name` on a batch, with the same weights."""
    model = create_model(name, in_size=IN_SIZE).eval()
    model_cl = create_model(name, in_size=IN_SIZE).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)
    session = onnx_session(model, tmp / f"{name}.onnx", threads)

    @torch.inference_mode()
    def fp32(x: torch.Tensor) -> torch.Tensor:
        return model(x)

    @torch.inference_mode()
    def bf16(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model_cl(x.contiguous(memory_format=torch.channels_last))

    def onnx(x: torch.Tensor) -> list:
        return session.run(None, {"image": x.numpy()})

    return {"fp32": fp32, "bf16": bf16, "onnx": onnx}


def bench_model(name: str, batches: list[int], seconds: float, threads: int, tmp: Path) -> None:
    model = create_model(name, in_size=IN_SIZE)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    mmacs = count_flops(model, IN_SIZE) / 1e6
    run = runners(name, threads, tmp)
    for batch in batches:
        x = torch.rand(batch, 1, IN_SIZE, IN_SIZE)
        rates = {key: faces_per_second(fn, x, seconds) for key, fn in run.items()}
        cells = "".join(f"{r:>10,.0f}" for r in rates.values())
        print(f"{name:<18}{params:>8.2f}M{mmacs:>8.1f}{batch:>7}{cells}  {max(rates, key=rates.get)}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(list_models()), help="comma-separated (default: all)")
    parser.add_argument("--batch", default="1,256", help="comma-separated batch sizes")
    parser.add_argument("--seconds", type=float, default=3.0, help="per model, batch size and runtime")
    args = parser.parse_args()

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {threads} threads, "
          f"{cpu_line()}")
    print(f"faces/s on {IN_SIZE}×{IN_SIZE}×1 inputs, best of {WINDOWS} windows; MMACs per face")
    print(f"{'model':<18}{'params':>9}{'MMACs':>8}{'batch':>7}{'fp32':>10}{'bf16+CL':>10}"
          f"{'onnxrt':>10}  best")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            bench_model(name, [int(b) for b in args.batch.split(",")], args.seconds, threads, Path(tmp))


if __name__ == "__main__":
    main()
