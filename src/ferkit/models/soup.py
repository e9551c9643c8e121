"""Weight averaging: one model whose weights are the weighted mean of several models' weights.

Fine-tunes of one starting point stay close enough in weight space that their average is a working model,
and often a better one than each of them away from the data they were tuned on ("model soups", Wortsman et
al. 2022; WiSE-FT, Wortsman et al. 2022, which mixes a model with its own fine-tune). The average costs
nothing at inference: it is one model of the same architecture. Only models of the same architecture,
classes and input may be averaged; whether the average is any good is for `ferkit evaluate` to say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import ConfigError
from .files import ModelInfo, load_model
from .resolver import resolve

SAME = ("model_name", "class_names", "in_size", "in_channels", "mean", "std")


def average_models(paths: Sequence[str | Path],
                   weights: Sequence[float] | None = None) -> tuple[torch.nn.Module, ModelInfo]:
    """The weighted mean of the models at `paths` (model files, run folders or "default"; equal weights by
    default), as a model and its info.

    Floating-point tensors (weights, biases, batch-norm statistics) are averaged; integer ones (batch-norm's
    step counters) are the first model's. The info is the first model's, with no temperature and no metrics
    (the average has to be measured and calibrated anew) and `extra["averaged_from"]` naming the parts.
    """
    if len(paths) < 2:
        raise ConfigError("averaging needs at least two models")
    weights = [1.0 / len(paths)] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ConfigError(f"--weights: {len(paths)} numbers ≥ 0 that sum to 1, got {list(weights)}")
    models = [load_model(resolve(str(p)).weights()) for p in paths]
    first_model, first_info = models[0]
    for path, (_, info) in zip(paths[1:], models[1:]):
        _check_compatible(first_info, info, paths[0], path)
    states = [model.state_dict() for model, _ in models]
    averaged = {}
    for name, tensor in states[0].items():
        if tensor.is_floating_point():
            mean = sum(w * state[name].double() for w, state in zip(weights, states))
            averaged[name] = mean.to(tensor.dtype)
        else:
            averaged[name] = tensor.clone()
    first_model.load_state_dict(averaged)
    info = replace(first_info, temperature=1.0, metrics={},
                   extra={"averaged_from": [str(p) for p in paths], "weights": weights})
    return first_model, info


def _check_compatible(a: ModelInfo, b: ModelInfo, path_a: str | Path, path_b: str | Path) -> None:
    for field in SAME:
        if getattr(a, field) != getattr(b, field):
            raise ConfigError(f"{path_b}: its {field} ({getattr(b, field)}) is not {path_a}'s "
                              f"({getattr(a, field)}); only models of one architecture, classes and input "
                              "can be averaged")
