"""resnet_fer: a ResNet-18-style network with a stem for 48×48 faces."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BasicBlock, conv_bn
from .registry import register_model


class ResNetFER(nn.Module):
    """Stem: conv3×3 at full resolution, then a stride-2 conv3×3 (48 → 24) instead of ImageNet's
    7×7/2 conv + max pool, which would leave a 48×48 face at 12×12 after the stem.
    Stages of basic blocks at 24, 12, 6 and 3 px, global average pool, linear classifier.
    """

    def __init__(self, num_classes: int, in_channels: int, width: int, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            *conv_bn(in_channels, width // 2), nn.ReLU(inplace=True),
            *conv_bn(width // 2, width, stride=2), nn.ReLU(inplace=True),
        )  # fmt: skip
        blocks: list[nn.Module] = []
        cin = width
        for i, depth in enumerate(layers):
            cout = width * 2**i
            for j in range(depth):
                blocks.append(BasicBlock(cin, cout, stride=2 if i > 0 and j == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model
def resnet_fer(
    num_classes: int = 7, in_size: int = 48, in_channels: int = 1,
    width: int = 32, layers: tuple[int, ...] = (2, 2, 2, 2)
) -> nn.Module:
    """ResNet-18 layout (2-2-2-2 basic blocks) at half width, 32-64-128-256 channels: 2.8M
    parameters, about 80 MMACs per 48×48 face. width=64 gives ResNet-18's widths (11M, ~0.3 GMACs)."""
    return ResNetFER(num_classes, in_channels, width, layers)
