"""seed_cnn: the CNN of the original notebook (seed 000), translated from Keras to PyTorch."""

from __future__ import annotations

from torch import nn

from .patch_norm import PatchNormSequential
from .registry import register_model


def _block(cin: int, cout: int) -> list[nn.Module]:
    # The notebook's Conv → BN → ReLU → MaxPool, with the ReLU moved after the pooling: max and ReLU
    # commute (ReLU never reorders values), so outputs and gradients are exactly the same, and the ReLU
    # (forward and backward) runs on a quarter of the values. Parameter names are unchanged.
    return [nn.Conv2d(cin, cout, 3), nn.BatchNorm2d(cout), nn.MaxPool2d(2), nn.ReLU(inplace=True)]


@register_model
def seed_cnn(num_classes: int = 7, in_size: int = 48, in_channels: int = 1) -> nn.Module:
    """Conv 3×3 64 → BN → MaxPool 2 → ReLU; Conv 3×3 128 → BN → MaxPool 2 → ReLU; Flatten;
    Dense 256 → BN → ReLU; Dense 128 → BN → ReLU; Dense num_classes.

    Padding and biases are Keras' defaults ("valid", biases on). The notebook's final softmax is
    left out: the model returns logits and CrossEntropyLoss applies it. In training the first batch
    norm's statistics come from the input patches (`patch_norm`): same function, fewer full-size passes.
    """
    side = ((in_size - 2) // 2 - 2) // 2
    return PatchNormSequential(
        *_block(in_channels, 64),
        *_block(64, 128),
        nn.Flatten(),
        nn.Linear(128 * side * side, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
        nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
        nn.Linear(128, num_classes),
    )  # fmt: skip
