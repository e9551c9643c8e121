"""A first Conv2d → BatchNorm2d pair whose training-time batch statistics come from the input patches.

A network's first convolution sees few input values per output (9 for a 3×3 kernel on grey faces) but
writes many (64 channels at 46×46 for `seed_cnn`). Its output's per-channel mean and variance over the
batch follow from the patches' 9-value mean μ and 9×9 covariance Σ: mean = w·μ + b, variance = wᵀΣw.
Batch norm is then a per-channel scale and shift, which folds into the convolution's weights, so the
pair runs as one convolution and the full-size batch-norm passes (statistics, normalisation, and both
again backward) never run. Outputs, gradients and running statistics are those of the pair, up to float
rounding (tests/test_patch_norm.py); evaluation uses the plain modules. Parameter names do not change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.affine and conv.groups == 1
        and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
    )  # fmt: skip


def _patch_moments(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean and (biased) covariance of the patches each output of `conv` reads, and their count."""
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        patches = F.unfold(x.float(), conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        mean = patches.mean(0)
        centred = patches - mean
        covariance = centred.T @ centred / len(patches)
        return mean.to(conv.weight.dtype), covariance.to(conv.weight.dtype), len(patches)


def _update_running_stats(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    if bn.running_mean is None:  # track_running_stats=False: batch statistics only
        return
    with torch.no_grad():
        bn.num_batches_tracked += 1
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        bn.running_mean.lerp_(mean.detach(), momentum)
        bn.running_var.lerp_(var.detach() * count / max(count - 1, 1), momentum)


def conv_bn_from_patches(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """`bn(conv(x))` in training mode, as one convolution with batch norm folded into its weights."""
    mu, sigma, count = _patch_moments(conv, x)
    with torch.autocast(x.device.type, enabled=False):
        weight = conv.weight.reshape(conv.out_channels, -1)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.bias)
        mean = weight @ mu + bias
        var = ((weight @ sigma) * weight).sum(1)
        scale = bn.weight * torch.rsqrt(var + bn.eps)
        folded_weight = conv.weight * scale.view(-1, 1, 1, 1)
        folded_bias = bn.bias + (bias - mean) * scale  # the conv bias cancels, as batch norm cancels it
    _update_running_stats(bn, mean, var, count)
    return F.conv2d(x, folded_weight, folded_bias, conv.stride, conv.padding, conv.dilation)


class PatchNormSequential(nn.Sequential):
    """An nn.Sequential whose first two modules, a Conv2d and a BatchNorm2d, train through
    `conv_bn_from_patches`. Anything else (evaluation, a SyncBatchNorm swapped in, an input that requires
    gradient) runs as nn.Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # an input that needs its own gradient (saliency, adversarial faces) takes the plain pair: the patch
        # statistics are computed without gradient, which is exact only for an input that has none
        if not (self.training and len(self) >= 2 and _foldable(self[0], self[1])) or x.requires_grad:
            return super().forward(x)
        x = conv_bn_from_patches(self[0], self[1], x)
        for module in list(self)[2:]:
            x = module(x)
        return x
