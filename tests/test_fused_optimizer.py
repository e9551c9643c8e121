"""The fused optimisers: the same updates as PyTorch's per-parameter loop, kept fused across a resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferkit.config import TrainConfig
from ferkit.training.schedule import can_fuse, load_optimizer_state, make_optimizer


def _model() -> nn.Module:
    # No bias before the batch norm: its gradient is rounding noise around 0, which Adam scales up to
    # full steps, so loop and fused kernels would move it differently (without changing the function).
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 6, generator=generator)
        loss = nn.functional.cross_entropy(model(x), torch.arange(8) % 3)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_optimizer_makes_the_loops_updates(name):
    cfg = TrainConfig(optimizer=name, lr=1e-2, weight_decay=0.01)
    fused_model, loop_model = _model(), _model()
    fused = make_optimizer(cfg, fused_model)
    assert fused.param_groups[0]["fused"] is True
    loop = make_optimizer(cfg, loop_model)
    loop.param_groups[0]["fused"] = None  # PyTorch's default on the CPU: a loop over the parameters
    _train(fused_model, fused)
    _train(loop_model, loop)
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_older_unfused_checkpoint_resumes_fused():
    cfg = TrainConfig(optimizer="adamw", lr=1e-2)
    model = _model()
    old = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    _train(model, old)
    resumed = make_optimizer(cfg, model)
    load_optimizer_state(resumed, old.state_dict())
    assert resumed.param_groups[0]["fused"] is True
    assert torch.equal(resumed.state[model[0].weight]["exp_avg"], old.state[model[0].weight]["exp_avg"])
    _train(model, resumed, steps=1)


def test_parameters_on_mixed_devices_or_integer_are_not_fused():
    assert can_fuse([torch.zeros(2), torch.zeros(3)]) is True
    assert can_fuse([torch.zeros(2), torch.zeros(2, device="meta")]) is None
    assert can_fuse([torch.zeros(2, dtype=torch.int64)]) is None
