"""fast_fer: a compact residual CNN for FER that classifies thousands of faces per second on a CPU."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BasicBlock, conv_bn
from .registry import register_model


class FastFER(nn.Module):
    """A stride-2 conv3×3 stem (48 → 24 px, w channels), three stages of basic blocks at 12, 6 and
    3 px with 2w, 4w and 8w channels (each stage opens with a stride-2 block), global average
    pool, dropout, linear classifier.

    Why this shape: on AVX-512 CPUs dense 3×3 convolutions in bf16 (oneDNN, channels_last) do
    several times more MACs per second than depthwise ones, and layers at 48 or 24 px cost memory
    traffic out of proportion to their MACs (batch norm, ReLU, additions; narrow convs run at half
    the speed of wide ones), so the net leaves full resolution at once and spends its budget on
    dense convs at 12 px and below (measured: a block at 24 px with 32 channels takes about 1.5×
    as long as a block of equal MACs at 6 px with 128 channels).
    """

    def __init__(
        self, num_classes: int, in_channels: int, width: int, blocks: tuple[int, ...], dropout: float
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(in_channels, width, stride=2), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = width
        for i, depth in enumerate(blocks):
            cout = width * 2 ** (i + 1)
            for j in range(depth):
                layers.append(BasicBlock(cin, cout, stride=2 if j == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model
def fast_fer(
    num_classes: int = 7,
    in_size: int = 48,
    in_channels: int = 1,
    width: float = 1.0,
    blocks: tuple[int, ...] = (1, 2, 1),
    dropout: float = 0.3,
) -> nn.Module:
    """The default model: stem 32, stages 64-128-256 with 1-2-1 blocks; 1.5M parameters, 36 MMACs
    per 48×48 face. `width` scales every layer's channels (rounded to multiples of 8)."""
    return FastFER(num_classes, in_channels, max(8, round(32 * width / 8) * 8), blocks, dropout)


@register_model
def fast_fer_s(
    num_classes: int = 7, in_size: int = 48, in_channels: int = 1, dropout: float = 0.3
) -> nn.Module:
    """fast_fer at width 0.75 (stem 24, stages 48-96-192): 0.85M parameters, 20 MMACs."""
    return fast_fer(num_classes, in_size, in_channels, width=0.75, dropout=dropout)


@register_model
def fast_fer_l(
    num_classes: int = 7, in_size: int = 48, in_channels: int = 1, dropout: float = 0.3
) -> nn.Module:
    """fast_fer at width 1.25 (stem 40, stages 80-160-320): 2.3M parameters, 56 MMACs."""
    return fast_fer(num_classes, in_size, in_channels, width=1.25, dropout=dropout)
