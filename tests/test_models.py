"""Every registered model: shapes, gradients, bf16 autocast, determinism, ONNX export; and ferkit.summary."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from ferkit.errors import ConfigError
from ferkit.models import create_model, list_models
from ferkit.summary import count_flops, format_summary, model_summary

MODELS = list_models()


def _create(name: str, **kwargs) -> nn.Module:
    """A model whose batch norms have random affine parameters and statistics, so that eval mode
    is not a near-identity and residual branches (zero-initialised γ) contribute."""
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_expected_models_are_registered():
    assert {"seed_cnn", "seed_dropout_cnn", "vgg_fer", "resnet_fer",
            "fast_fer", "fast_fer_s", "fast_fer_l"} <= set(MODELS)


def test_unknown_model_raises_config_error():
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("no_such_net")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("in_size,num_classes,in_channels", [(48, 7, 1), (64, 8, 1), (48, 8, 3), (64, 7, 3)])
def test_output_shape(name, in_size, num_classes, in_channels):
    model = create_model(name, num_classes=num_classes, in_size=in_size, in_channels=in_channels).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, in_size, in_size))
    assert out.shape == (2, num_classes)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", MODELS)
def test_backward_gives_finite_gradients(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 1, 48, 48)), torch.tensor([0, 1, 2, 6]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_channels_last(name):
    model = _create(name).to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(x).float().logsumexp(1).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x).float()
    assert out.shape == (4, 7)
    assert (out - reference).abs().max() <= 0.05 * reference.abs().max() + 1e-3  # bf16: ~3 digits


@pytest.mark.parametrize("name", MODELS)
def test_eval_mode_is_deterministic(name):
    model = _create(name).eval()
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter: no onnxscript needed
@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_matches_pytorch(name, tmp_path):
    model = _create(name).eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        model, (torch.randn(2, 1, 48, 48),), str(path), dynamo=False, opset_version=17,
        input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
    )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 48, 48)  # a batch size other than the one exported with
    (onnx_out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(onnx_out, expected, rtol=1e-4, atol=1e-4)


# --- ferkit.summary -------------------------------------------------------------------------------


class _Scaled(nn.Module):
    """A non-leaf module with a parameter of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.scale


def _tiny() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), _Scaled())
    model[0].weight.requires_grad_(False)
    return model


def test_summary_rows_on_a_hand_counted_model():
    model = _tiny().train()
    model[0].eval()
    rows = model_summary(model, in_size=8)
    assert model.training and not model[0].training  # modes restored, module by module
    assert [(r.name, r.type, r.output_shape) for r in rows] == [
        ("input", "Input", (1, 8, 8)),
        ("0", "Conv2d", (4, 8, 8)),
        ("1", "ReLU", (4, 8, 8)),
        ("2", "Flatten", (256,)),
        ("3.fc", "Linear", (5,)),
        ("3", "_Scaled", (5,)),
    ]
    assert [r.params for r in rows] == [0, 40, 0, 0, 1285, 1]
    assert [r.trainable for r in rows] == [0, 4, 0, 0, 1285, 1]
    assert count_flops(model, in_size=8) == 4 * 8 * 8 * 9 + 256 * 5


def test_format_summary_table_and_totals():
    text = format_summary(model_summary(_tiny(), in_size=8), "tiny")
    assert text.startswith('Model: "tiny"')
    for expected in ["Layer (type)", "Output Shape", "Param #", "3.fc (Linear)", "(4, 8, 8)", "1,285",
                     "Total params: 1,326", "Trainable params: 1,290", "Non-trainable params: 36",
                     "Input size: 1×8×8"]:  # fmt: skip
        assert expected in text


@pytest.mark.parametrize("name", MODELS)
def test_summary_counts_every_parameter(name):
    model = create_model(name, in_size=64)
    rows = model_summary(model, in_size=64)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert rows[-1].output_shape == (7,)
    assert count_flops(model, in_size=64) > 0


def test_fast_fer_fits_its_compute_budget():
    """Default candidate must stay cheap: its ≥ 4,000 faces/s on 2 CPU cores rests on ~36 MMACs per face."""
    assert count_flops(create_model("fast_fer")) <= 40e6


def test_seed_cnn_pools_before_its_relu_with_the_notebooks_outputs_and_gradients():
    """seed_cnn runs MaxPool → ReLU, the notebook ReLU → MaxPool: the same function and gradients."""
    model = _create("seed_cnn").train()
    layers = list(model)
    assert [type(m) for m in layers[:4]] == [nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ReLU]
    notebook = nn.Sequential(*layers[:2], layers[3], layers[2],
                             *layers[4:6], layers[7], layers[6], *layers[8:])
    x = torch.randn(8, 1, 48, 48)
    x[:, :, :24] = x[:, :, :24].round()  # ties in the pooling windows
    outputs, grads = [], []
    pool_first = nn.Sequential(*layers)  # seed_cnn's order, without the patch-statistics batch norm
    for net in (pool_first, notebook):  # the same modules, so the same parameters
        net.zero_grad()
        outputs.append(net(x))
        outputs[-1].square().sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    assert torch.equal(*outputs)
    assert all(torch.equal(a, b) for a, b in zip(*grads))
