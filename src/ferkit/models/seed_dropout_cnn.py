"""seed_dropout_cnn: the classic Keras FER2013 network of seeds 003/004."""

from __future__ import annotations

from torch import nn

from .registry import register_model


@register_model
def seed_dropout_cnn(num_classes: int = 7, in_size: int = 48, in_channels: int = 1) -> nn.Module:
    """Conv 32 → Conv 64 → MaxPool → Dropout .25 → Conv 128 → MaxPool → Conv 128 → MaxPool →
    Dropout .25 → Flatten → Dense 1024 → Dropout .5 → Dense num_classes (3×3 convs, ReLU).

    The widely copied Keras FER2013 example, with Keras' "valid" padding: 48×48 shrinks to
    4×4×128 before the dense layers.
    """
    side = (((in_size - 4) // 2 - 2) // 2 - 2) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(64, 128, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(128 * side * side, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(1024, num_classes),
    )  # fmt: skip
