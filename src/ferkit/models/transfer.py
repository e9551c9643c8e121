"""Transfer learning: a trained model's weights into a model of the same architecture for other classes."""

from __future__ import annotations

import torch
from torch import nn


def classifier_head(model: nn.Module) -> str:
    """The name of the layer that maps features to class scores: the last linear layer, in every
    registered architecture."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__} has no linear classifier layer")
    return linear[-1]


def load_all_but_head(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of `state` into `model` except the classifier head's, which keeps its (fresh)
    weights; returns the names of the tensors left as they were."""
    prefix = classifier_head(model) + "."
    head = [key for key in model.state_dict() if key.startswith(prefix)]
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if not k.startswith(prefix)},
                                                strict=False)
    if sorted(missing) != sorted(head) or unexpected:
        raise ValueError(f"weights do not fit the model apart from its head (missing {missing}, "
                         f"unexpected {unexpected})")
    return head
