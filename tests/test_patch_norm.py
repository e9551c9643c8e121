"""conv_bn_from_patches: a Conv2d → BatchNorm2d pair trained with statistics from the input patches."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ferkit.models import create_model
from ferkit.models.patch_norm import PatchNormSequential


def _pair(bias: bool = True, stride: int = 1, padding: int = 0, momentum: float | None = 0.1,
          track: bool = True) -> list[nn.Module]:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 16, 3, stride, padding, bias=bias)
    bn = nn.BatchNorm2d(16, momentum=momentum, track_running_stats=track)
    with torch.no_grad():  # batch norm's own initial scale and shift (1, 0) would hide mistakes in them
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return [conv, bn, nn.ReLU()]


def _train_twice(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output of a second training step (so running statistics and `momentum=None` are exercised) and the
    gradients of both steps, summed."""
    net.train()
    for _ in range(2):
        out = net(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out, [p.grad for p in net.parameters()]


@pytest.mark.parametrize("kwargs", [{}, {"bias": False}, {"stride": 2, "padding": 1}, {"momentum": None},
                                    {"track": False}])
def test_same_outputs_gradients_and_running_stats_as_the_plain_pair(kwargs):
    """Against the plain pair in float64, the patched pair in float32 is off by float32 rounding only."""
    layers = _pair(**kwargs)
    plain, patched = nn.Sequential(*copy.deepcopy(layers)).double(), PatchNormSequential(*layers)
    x = torch.rand(6, 1, 20, 20) * 2 + 0.3  # off-centre inputs, as pixels are
    out_plain, grads_plain = _train_twice(plain, x.double())
    out_patched, grads_patched = _train_twice(patched, x)
    torch.testing.assert_close(out_patched.double(), out_plain, rtol=1e-4, atol=1e-5)
    scale = max(g.abs().max().item() for g in grads_plain)
    for name, a, b in zip(dict(plain.named_parameters()), grads_patched, grads_plain):
        if name == "0.bias":  # batch norm cancels the conv bias, so its gradient is zero
            assert a.abs().max() == 0 and b.abs().max() < 1e-9 * scale
        else:
            torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5 * scale, msg=name)
    for name, buffer in plain.named_buffers():
        torch.testing.assert_close(dict(patched.named_buffers())[name].to(buffer.dtype), buffer,
                                   rtol=1e-5, atol=1e-6)


def test_evaluation_and_unfoldable_pairs_run_as_plain_sequential():
    layers = _pair()
    plain, patched = nn.Sequential(*layers), PatchNormSequential(*layers)
    x = torch.rand(4, 1, 12, 12)
    assert torch.equal(patched.eval()(x), plain.eval()(x))
    grouped = [nn.Conv2d(2, 4, 3, groups=2), nn.BatchNorm2d(4)]
    x2 = torch.rand(4, 2, 12, 12)
    torch.manual_seed(1)
    expected = nn.Sequential(*copy.deepcopy(grouped)).train()(x2)
    assert torch.equal(PatchNormSequential(*grouped).train()(x2), expected)


def test_an_input_that_requires_gradient_gets_the_plain_pairs_input_gradient():
    layers = _pair()
    plain, patched = nn.Sequential(*copy.deepcopy(layers)).train(), PatchNormSequential(*layers).train()
    x = torch.rand(6, 1, 20, 20, requires_grad=True)
    grads = []
    for net in (plain, patched):
        out = net(x)
        grads.append(torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), x)[0])
    torch.testing.assert_close(grads[1], grads[0])


def test_seed_cnn_keeps_its_parameter_names_and_trains_the_same_under_bf16():
    model = create_model("seed_cnn")
    plain = nn.Sequential(*copy.deepcopy(list(model)))
    assert isinstance(model, PatchNormSequential)
    assert list(model.state_dict()) == list(plain.state_dict())
    x = torch.rand(16, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    losses = []
    for net in (model.train(), plain.train()):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses.append(nn.functional.cross_entropy(net(x).float(), torch.arange(16) % 7))
    torch.testing.assert_close(losses[0], losses[1], rtol=2e-2, atol=2e-2)
