"""ferkit.augment: each transform does what its docstring says, on hand-made parameters."""

from __future__ import annotations

import math

import pytest
import torch

from ferkit.augment import AugmentConfig, Augmenter, AugmentParams
from ferkit.errors import ConfigError

H = W = 48
OFF = dict(rotation=0, width_shift=0, height_shift=0, shear=0, zoom=0, horizontal_flip=False, erasing=0)


def params(n: int = 1, **kw) -> AugmentParams:
    """Identity parameters for n samples, with some overridden (scalars broadcast)."""
    base = dict(angle=0.0, shift_x=0.0, shift_y=0.0, shear=0.0, scale=1.0)
    base.update({k: v for k, v in kw.items() if k in base})
    p = {k: torch.full((n,), float(v), dtype=torch.float64) for k, v in base.items()}
    p["flip"] = kw.get("flip", torch.zeros(n, dtype=torch.bool))
    p["erase_box"] = kw.get("erase_box", torch.zeros(n, 4, dtype=torch.long))
    return AugmentParams(**p)


def blob(row: float, col: float, sigma: float = 1.5) -> torch.Tensor:
    """A 1×1×H×W Gaussian spot centred on pixel (row, col)."""
    r = torch.arange(H, dtype=torch.float32).view(-1, 1)
    c = torch.arange(W, dtype=torch.float32).view(1, -1)
    return torch.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * sigma**2)).view(1, 1, H, W)


def centre_of_mass(img: torch.Tensor) -> tuple[float, float]:
    img = img.reshape(H, W)
    r = torch.arange(H, dtype=img.dtype).view(-1, 1)
    c = torch.arange(W, dtype=img.dtype).view(1, -1)
    total = img.sum()
    return float((img * r).sum() / total), float((img * c).sum() / total)


def to_centred(row: float, col: float) -> tuple[float, float]:
    """Pixel (row, col) -> (x, y) about the image centre, the frame the transforms are defined in."""
    return col - (W - 1) / 2, row - (H - 1) / 2


def to_pixel(x: float, y: float) -> tuple[float, float]:
    return y + (H - 1) / 2, x + (W - 1) / 2


def transformed(aug_kw: dict, p: AugmentParams, x: torch.Tensor) -> torch.Tensor:
    return Augmenter(AugmentConfig(**{**OFF, **aug_kw})).apply(x, p)


def test_all_off_is_exact_identity():
    x = torch.randn(4, 3, H, W)
    y = Augmenter(AugmentConfig(**OFF))(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, x)


def test_zero_parameters_with_affine_on_is_identity():
    x = torch.rand(2, 1, H, W)
    y = transformed(dict(rotation=10), params(2), x)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_flip_matches_torch_flip_on_marked_samples_and_twice_is_identity():
    x = torch.randn(4, 2, H, W)
    flip = torch.tensor([True, False, True, False])
    aug = Augmenter(AugmentConfig(**{**OFF, "horizontal_flip": True}))
    y = aug.apply(x, params(4, flip=flip))
    assert torch.equal(y[flip], torch.flip(x[flip], dims=[-1]))
    assert torch.equal(y[~flip], x[~flip])
    assert torch.equal(aug.apply(y, params(4, flip=flip)), x)


def test_random_flip_flips_about_half():
    x = torch.randn(400, 1, 4, 4)
    y = Augmenter(AugmentConfig(**{**OFF, "horizontal_flip": True}))(x, torch.Generator().manual_seed(1))
    flipped = (y == x.flip(-1)).flatten(1).all(1)
    assert ((y == x).flatten(1).all(1) | flipped).all()
    assert 150 < int(flipped.sum()) < 250


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -5), (7, 4)])
def test_shift_moves_a_dot_by_whole_pixels(dx, dy):
    x = torch.zeros(1, 1, H, W)
    x[0, 0, 20, 25] = 1.0
    y = transformed(dict(width_shift=0.2, height_shift=0.2), params(shift_x=dx, shift_y=dy), x)
    expected = torch.zeros_like(x)
    expected[0, 0, 20 + dy, 25 + dx] = 1.0
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_rotation_by_90_degrees_moves_a_dot_exactly():
    x = torch.zeros(1, 1, H, W)
    x[0, 0, 14, 34] = 1.0
    y = transformed(dict(rotation=90), params(angle=90), x)
    # (x, y) = (10.5, -9.5) turns counter-clockwise on screen to (-9.5, -10.5): pixel (13, 14).
    expected = torch.zeros_like(x)
    expected[0, 0, 13, 14] = 1.0
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("angle", [-25.0, 17.0])
def test_rotation_moves_a_spot_where_the_rotation_matrix_says(angle):
    row, col = 12.0, 30.0
    y = transformed(dict(rotation=(angle, angle)), params(angle=angle), blob(row, col))
    px, py = to_centred(row, col)
    a = math.radians(angle)
    expected = to_pixel(math.cos(a) * px + math.sin(a) * py, -math.sin(a) * px + math.cos(a) * py)
    assert centre_of_mass(y) == pytest.approx(expected, abs=0.1)


def test_rotation_range_pair_forces_the_angle():
    aug = Augmenter(AugmentConfig(**{**OFF, "rotation": (30, 30)}))
    p = aug.sample((5, 1, H, W), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.allclose(p.angle, torch.full((5,), 30.0, dtype=p.angle.dtype))


def test_shear_moves_a_spot_per_the_shear_matrix():
    row, col, s = 36.0, 20.0, 15.0
    y = transformed(dict(shear=s), params(shear=s), blob(row, col))
    px, py = to_centred(row, col)
    expected = to_pixel(px + math.tan(math.radians(s)) * py, py)
    assert centre_of_mass(y) == pytest.approx(expected, abs=0.1)


def test_zoom_in_enlarges_a_centred_square():
    x = torch.zeros(1, 1, H, W)
    x[..., 16:32, 16:32] = 1.0  # 16×16, centred
    y = transformed(dict(zoom=0.5), params(scale=1.5), x)
    assert float((y > 0.5).sum()) == pytest.approx(24 * 24, rel=0.05)
    assert bool((y[..., 13:35, 13:35] > 0.99).all())  # 22×22 core, a pixel inside 24×24
    assert centre_of_mass(y) == pytest.approx(((H - 1) / 2, (W - 1) / 2), abs=1e-3)


def test_zoom_out_shrinks_and_fill_modes_differ():
    x = torch.ones(1, 1, H, W)
    zeros = transformed(dict(zoom=0.5, fill_mode="zeros"), params(scale=0.5), x)
    nearest = transformed(dict(zoom=0.5, fill_mode="nearest"), params(scale=0.5), x)
    assert float(zeros.sum()) == pytest.approx(H * W / 4, rel=0.05)
    torch.testing.assert_close(nearest, x)


def test_erasing_changes_one_rectangle_within_area_bounds():
    n = 200
    x = torch.rand(n, 1, H, W) + 10.0  # noise fill stays in [min, max] of each sample
    cfg = AugmentConfig(**{**OFF, "erasing": 1.0, "erasing_fill": "zero"})
    y = Augmenter(cfg)(x, torch.Generator().manual_seed(3))
    changed = (y != x)[:, 0]
    assert bool((y[(y != x)] == 0).all())
    for mask in changed:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        top, bottom, left, right = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
        area = (bottom - top + 1) * (right - left + 1)
        assert int(mask.sum()) == area  # one filled rectangle
        assert 0.02 * H * W - H / 2 <= area <= 0.2 * H * W + H / 2  # rounding of the sides


def test_erasing_noise_stays_in_sample_range_and_probability_is_respected():
    x = torch.rand(300, 1, H, W) * 2 - 1
    y = Augmenter(AugmentConfig(**{**OFF, "erasing": 0.5}))(x, torch.Generator().manual_seed(4))
    erased = (y != x).flatten(1).any(1)
    assert 100 < int(erased.sum()) < 200
    assert float(y.min()) >= -1 and float(y.max()) <= 1


def test_same_seed_same_output_different_seed_different_output():
    x = torch.rand(16, 1, H, W)
    aug = Augmenter(AugmentConfig(shear=5, erasing=0.5))
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_preserved(dtype):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        x = torch.rand(5, 3, 40, 56, dtype=dtype, device=device)
        y = Augmenter(AugmentConfig(shear=5, erasing=0.5))(x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_non_square_shift_uses_each_sides_fraction():
    x = torch.zeros(1, 1, 20, 40)
    x[0, 0, 10, 10] = 1.0
    y = Augmenter(AugmentConfig(**{**OFF, "width_shift": 0.1})).apply(x, params(shift_x=4))
    assert y[0, 0, 10, 14] == pytest.approx(1.0, abs=1e-5)


def test_bad_config_raises_config_error():
    for kw in [dict(fill_mode="wrap"), dict(erasing=1.5), dict(zoom=(1.2, 0.8)), dict(zoom=1.0),
               dict(erasing_fill="mean")]:
        with pytest.raises(ConfigError):
            AugmentConfig(**kw)


def test_rejects_non_batch_input():
    with pytest.raises(ValueError):
        Augmenter()(torch.rand(1, H, W))
