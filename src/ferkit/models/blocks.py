"""Building blocks shared by the residual architectures."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (He et al. 2016); a strided 1×1 projection when the
    shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, stride), nn.ReLU(inplace=True), *conv_bn(cout, cout))
        same = cin == cout and stride == 1
        self.shortcut = nn.Identity() if same else nn.Sequential(*conv_bn(cin, cout, stride, kernel=1))
        self.act = nn.ReLU(inplace=True)
        nn.init.zeros_(self.body[-1].weight)  # each block starts as (nearly) the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))
