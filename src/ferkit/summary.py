"""A Keras-style `model.summary()` for PyTorch models: per-layer output shapes, parameters, MACs."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn


class LayerRow(NamedTuple):
    """One module call (or the input). output_shape leaves out the batch dimension; macs are per image."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    macs: int


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of conv and linear layers (the usual "FLOPs" of papers); 0 for anything else."""
    per_output = 0
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
    elif isinstance(module, nn.Linear):
        per_output = module.in_features
    return per_output * output[0].numel()


def model_summary(model: nn.Module, in_size: int = 48, in_channels: int = 1) -> list[LayerRow]:
    """Run one in_channels×in_size×in_size image through `model` (eval mode, no grad) and return
    a row for the input, then one per call of a leaf module (or of any module holding parameters of
    its own), in execution order. A module called twice gives two rows; its parameters count once."""
    rows = [LayerRow("input", "Input", (in_channels, in_size, in_size), 0, 0, 0)]
    names = {module: name for name, module in model.named_modules()}
    seen: set[nn.Module] = set()

    def hook(module: nn.Module, _inputs, output) -> None:
        out = (output if isinstance(output, torch.Tensor)
               else next(o for o in output if isinstance(o, torch.Tensor)))
        params = [] if module in seen else list(module.parameters(recurse=False))
        seen.add(module)
        rows.append(
            LayerRow(
                name=names[module],
                type=type(module).__name__,
                output_shape=tuple(out.shape[1:]),
                params=sum(p.numel() for p in params),
                trainable=sum(p.numel() for p in params if p.requires_grad),
                macs=_macs(module, out),
            )
        )

    hooked = [m for m in model.modules()
              if next(m.children(), None) is None or any(m.parameters(recurse=False))]
    handles = [m.register_forward_hook(hook) for m in hooked]
    modes = {m: m.training for m in model.modules()}
    param = next(model.parameters(), torch.zeros(()))
    x = torch.zeros(1, in_channels, in_size, in_size, device=param.device, dtype=param.dtype)
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for m, training in modes.items():
            m.training = training
        for h in handles:
            h.remove()
    return rows


def count_flops(model: nn.Module, in_size: int = 48, in_channels: int = 1) -> int:
    """Multiply-adds of the conv and linear layers for one image (the "FLOPs" papers quote)."""
    return sum(row.macs for row in model_summary(model, in_size, in_channels))


def format_summary(rows: list[LayerRow], model_name: str) -> str:
    """The table `ferkit summary --model NAME` prints: Layer (type) | Output Shape | Param #, then
    total / trainable parameters, multiply-adds and the input size (from the "input" row)."""
    table = [(f"{r.name} ({r.type})", str(r.output_shape), f"{r.params:,}") for r in rows]
    header = ("Layer (type)", "Output Shape", "Param #")
    w0, w1, w2 = (max(len(line[i]) for line in [header, *table]) for i in range(3))
    width = w0 + w1 + w2 + 4
    lines = [f'Model: "{model_name}"', "-" * width,
             f"{header[0]:<{w0}}  {header[1]:<{w1}}  {header[2]:>{w2}}"]
    lines.append("=" * width)
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in table]
    lines.append("=" * width)
    total, trainable = sum(r.params for r in rows), sum(r.trainable for r in rows)
    macs = sum(r.macs for r in rows)
    inputs = [r.output_shape for r in rows if r.type == "Input"]
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        f"Multiply-adds: {macs / 1e6:,.1f} M per image (conv + linear)",
    ]
    if inputs:
        lines.append("Input size: " + "×".join(map(str, inputs[0])))
    return "\n".join(lines)
