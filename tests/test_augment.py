"""ferkit.augment: each transform does what its docstring says, on hand-made parameters."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ferkit.augment import AugmentConfig, Augmenter, AugmentParams, mix_batch
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


# ---------------------------------------------------------------- photo-shift transforms and mixing

PHOTO_SHIFT = {
    "aspect": dict(aspect=0.3),
    "low_res": dict(low_res=0.5, low_res_scale=0.35),
    "blur": dict(blur=0.5, blur_sigma=1.5),
    "noise": dict(noise=0.5, noise_sigma=0.05),
    "tone": dict(brightness=0.2, contrast=0.3, gamma=0.4),
    "jpeg": dict(jpeg=0.5, jpeg_quality=20),
    "yaw": dict(yaw=25.0),
}


def faces(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [0, 1] with some detail: blobs on a gradient, plus fine texture."""
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(0.2, 0.8, W).view(1, 1, 1, W).expand(n, 1, H, W)
    spots = sum(blob(float(r), float(c), 4.0) for r, c in torch.randint(8, 40, (3, 2), generator=g))
    return (0.6 * base + 0.3 * spots + 0.1 * torch.rand(n, 1, H, W, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("name", PHOTO_SHIFT)
def test_photo_shift_transform_changes_images_keeps_shape_dtype_range_and_is_seeded(name):
    x = faces(32)
    aug = Augmenter(AugmentConfig(**{**OFF, **PHOTO_SHIFT[name]}))
    y = aug(x, torch.Generator().manual_seed(5))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    changed = (y != x).flatten(1).any(1)
    assert changed.any()
    if name in ("low_res", "blur", "noise", "jpeg"):  # a probability: the others stay exactly as they were
        assert 4 <= int(changed.sum()) <= 28
    assert torch.equal(y, aug(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(y, aug(x, torch.Generator().manual_seed(6)))


@pytest.mark.parametrize("name", PHOTO_SHIFT)
def test_photo_shift_transform_leaves_the_existing_draws_alone(name):
    """A new transform draws after the existing ones, so turning it on keeps their parameters."""
    shape, cpu = (64, 1, H, W), torch.device("cpu")
    old = Augmenter(AugmentConfig(shear=5, erasing=0.5)).sample(shape, torch.Generator().manual_seed(9), cpu)
    new = Augmenter(AugmentConfig(shear=5, erasing=0.5, **PHOTO_SHIFT[name]))
    drawn = new.sample(shape, torch.Generator().manual_seed(9), cpu)
    for field in ("angle", "shift_x", "shift_y", "shear", "scale", "flip", "erase_box"):
        assert torch.equal(getattr(old, field), getattr(drawn, field)), field
    assert any(v is not None for v in (drawn.aspect, drawn.low_res, drawn.blur_sigma, drawn.brightness,
                                       drawn.noise_sigma, drawn.jpeg_quality, drawn.yaw))
    assert old.aspect is old.low_res is old.blur_sigma is old.gamma is old.jpeg_quality is old.yaw is None


def test_photo_shift_sees_through_the_normalisation():
    """The trainer hands normalised input; with its mean and std the pixels come out as without it."""
    x = faces(16)
    cfg = AugmentConfig(**{**OFF, **PHOTO_SHIFT["tone"], **PHOTO_SHIFT["noise"], **PHOTO_SHIFT["jpeg"]})
    mean, std = 0.5, 0.25
    plain = Augmenter(cfg)(x, torch.Generator().manual_seed(2))
    normalised = Augmenter(cfg)((x - mean) / std, torch.Generator().manual_seed(2), mean=mean, std=std)
    torch.testing.assert_close(normalised * std + mean, plain, atol=1e-5, rtol=0)


def test_aspect_stretches_a_centred_square_into_a_rectangle():
    x = torch.zeros(1, 1, H, W)
    x[..., 16:32, 16:32] = 1.0
    p = params(1)
    p.aspect = torch.tensor([1.5625], dtype=torch.float64)  # width × 1.25, height / 1.25
    y = transformed(dict(aspect=0.6), p, x)[0, 0] > 0.5
    assert int(y.any(0).sum()) == 20 and int(y.any(1).sum()) in (12, 13, 14)
    assert centre_of_mass(y.float()) == pytest.approx(((H - 1) / 2, (W - 1) / 2), abs=1e-3)


def test_low_resolution_removes_fine_detail_and_keeps_flat_images():
    stripes = (torch.arange(W) % 2).float().expand(2, 1, H, W).clone()
    p = params(2)
    p.low_res = torch.tensor([[24, 24], [0, 0]])
    y = transformed(dict(low_res=1.0), p, stripes)
    torch.testing.assert_close(y[0], torch.full_like(y[0], 0.5))  # 2-pixel stripes average out
    assert torch.equal(y[1], stripes[1])
    flat = torch.full((1, 1, H, W), 0.3)
    p1 = params(1)
    p1.low_res = torch.tensor([[17, 17]])
    torch.testing.assert_close(transformed(dict(low_res=1.0), p1, flat), flat)


def test_blur_spreads_a_dot_by_sigma_and_keeps_its_mass():
    x = torch.zeros(2, 1, H, W)
    x[:, 0, 24, 20] = 1.0
    p = params(2)
    p.blur_sigma = torch.tensor([2.0, 0.0], dtype=torch.float64)
    y = transformed(dict(blur=1.0, blur_sigma=2.0), p, x)
    assert float(y[0].sum()) == pytest.approx(1.0, abs=1e-5)
    cols = torch.arange(W, dtype=torch.float32)
    variance = float((y[0, 0].sum(0) * (cols - 20) ** 2).sum())
    assert variance == pytest.approx(4.0, rel=0.05)
    assert torch.equal(y[1], x[1])


def test_tone_applies_gamma_then_contrast_then_brightness():
    x = faces(1)
    p = params(1)
    p.gamma, p.contrast, p.brightness = (torch.tensor([v], dtype=torch.float64) for v in (2.0, 0.5, 0.1))
    y = transformed(dict(gamma=1.0, contrast=0.5, brightness=0.1), p, x)
    squared = x**2
    expected = ((squared - squared.mean()) * 0.5 + squared.mean() + 0.1).clamp(0, 1)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)


def test_noise_has_the_drawn_standard_deviation():
    x = torch.full((2, 1, H, W), 0.5)
    p = params(2)
    p.noise_sigma = torch.tensor([0.05, 0.0], dtype=torch.float64)
    y = Augmenter(AugmentConfig(**{**OFF, "noise": 1.0})).apply(x, p, torch.Generator().manual_seed(0))
    assert float((y[0] - x[0]).std()) == pytest.approx(0.05, rel=0.05)
    assert torch.equal(y[1], x[1])


def test_jpeg_quality_sets_the_error_and_untouched_samples_stay():
    x = faces(3)
    p = params(3)
    p.jpeg_quality = torch.tensor([5, 90, 0])
    y = transformed(dict(jpeg=1.0), p, x)
    errors = (y - x).abs().flatten(1).mean(1)
    assert errors[0] > 2 * errors[1] > 0 and errors[2] == 0
    assert torch.equal((y[:2] * 255).round() / 255, y[:2])  # decoded 8-bit pixels


def test_mixup_mixes_images_and_targets_by_the_same_share():
    x = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, H, W)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    y, soft = mix_batch(x, labels, 7, mixup=0.4, cutmix=0.0, generator=torch.Generator().manual_seed(0))
    share = soft[torch.arange(6), labels]
    partner = labels.flip(0)
    torch.testing.assert_close(soft[torch.arange(6), partner], 1 - share)
    torch.testing.assert_close(y[:, 0, 0, 0], share * labels.float() + (1 - share) * partner.float())
    torch.testing.assert_close(soft.sum(1), torch.ones(6))
    again = mix_batch(x, labels, 7, mixup=0.4, cutmix=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], y) and torch.equal(again[1], soft)


def test_cutmix_pastes_a_rectangle_and_the_target_share_is_the_area_kept():
    n = 8
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, H, W)
    targets = torch.eye(7)[torch.arange(n) % 7]  # distributions work as well as indices
    y, soft = mix_batch(x, targets, 7, mixup=0.0, cutmix=1.0, generator=torch.Generator().manual_seed(1))
    for i in range(n):
        own = (y[i] == i).float().mean()
        assert bool(((y[i] == i) | (y[i] == n - 1 - i)).all())
        if i != n - 1 - i and i % 7 != (n - 1 - i) % 7:
            assert float(soft[i, i % 7]) == pytest.approx(float(own), abs=1e-6)
    assert bool((y != x).any())


def test_mixup_and_cutmix_together_split_the_batch():
    n = 200
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, H, W).clone()
    y, _ = mix_batch(x, torch.zeros(n, dtype=torch.long), 7, mixup=1.0, cutmix=1.0,
                     generator=torch.Generator().manual_seed(2))
    partner = x.flip(0)
    pasted = ((y == x) | (y == partner)).flatten(1).all(1)
    assert 60 < int(pasted.sum()) < 140

def test_yaw_turns_the_face_towards_one_side_and_narrows_the_far_side():
    x = torch.zeros(1, 1, H, W)
    x[..., 16:32, 8:20] = 1.0  # two bars, the "eyes", left and right of the centre
    x[..., 16:32, 28:40] = 1.0
    p = params(1)
    p.yaw = torch.tensor([0.0], dtype=torch.float64)
    torch.testing.assert_close(transformed(dict(yaw=30.0), p, x), x, atol=1e-5, rtol=0)  # no turn
    p.yaw = torch.tensor([30.0], dtype=torch.float64)
    y = transformed(dict(yaw=30.0), p, x)[0, 0] > 0.5
    row = y[24].int()
    starts, ends = torch.where(row.diff() == 1)[0] + 1, torch.where(row.diff() == -1)[0] + 1
    (near, far) = (ends - starts).tolist()  # the two bars' widths, 12 px each before the turn
    assert far < 10 < 12 < near  # the side turned away narrows, the near side widens
    assert centre_of_mass(y.float())[1] > (W - 1) / 2 + 2  # the features move towards the far side
    assert int(y.any(1).sum()) == 16  # a turn about a vertical axis leaves the heights alone


@pytest.mark.parametrize("kw", [dict(low_res=1.5), dict(jpeg_quality=0), dict(jpeg_quality=99),
                                dict(contrast=1.5), dict(blur=(0.1, 0.2)), dict(noise_sigma=-1.0),
                                dict(low_res_scale=0.0), dict(mixup=-0.2), dict(aspect="wide"),
                                dict(erasing=(0.1, 0.2)), dict(yaw=90.0), dict(yaw=-5.0)])
def test_bad_photo_shift_config_raises_config_error(kw):
    with pytest.raises(ConfigError):
        AugmentConfig(**kw)


def test_trainer_augments_with_its_normalisation_and_mixes_the_targets():
    import numpy as np

    from ferkit.config import TrainConfig
    from ferkit.data.classes import CANONICAL_ORDER
    from ferkit.data.dataset import FaceDataset
    from ferkit.training import Trainer

    rng = np.random.default_rng(0)
    data = FaceDataset(images=rng.integers(0, 256, (32, H, W), dtype=np.uint8),
                       labels=rng.integers(0, 7, 32), class_names=list(CANONICAL_ORDER[:7]))
    every = {k: v for kw in PHOTO_SHIFT.values() for k, v in kw.items()}
    cfg = TrainConfig(model="seed_cnn", batch_size=16, device="cpu", precision="fp32", threads=1,
                      augment=AugmentConfig(**every, mixup=0.2, cutmix=1.0))
    seen = {}

    def losses() -> list[float]:
        trainer = Trainer(cfg, data, data, progress=False)
        augment = trainer.augment

        def spy(x, generator=None, **kw):
            seen.update(kw)
            return augment(x, generator, **kw)

        trainer.augment = spy
        return [float(trainer.train_step(trainer.train_images[i:i + 16], trainer.train_targets[i:i + 16])[0])
                for i in (0, 16)]

    first = losses()
    assert seen == {"mean": pytest.approx(float(data.images.mean() / 255)),
                    "std": pytest.approx(float(data.images.std() / 255))}
    assert all(math.isfinite(v) for v in first) and first == losses()
    trainer = Trainer(cfg, data, data, progress=False)
    x, soft = trainer.mix(torch.rand(16, 1, H, W), trainer.train_labels[:16])
    assert soft.shape == (16, 7) and torch.allclose(soft.sum(1), torch.ones(16))
    plain = Trainer(TrainConfig(model="seed_cnn", device="cpu"), data, data, progress=False)
    labels = trainer.train_labels[:16]
    unmixed = plain.mix(x, labels)  # mixing off: the batch and its targets as they were
    assert unmixed[0] is x and unmixed[1] is labels


def test_views_give_the_augmented_batch_and_its_geometry_alone():
    """One draw, two views: the second is the first without degradations and erasing, moved the same way."""
    x = faces(32)
    every = {k: v for name, kw in PHOTO_SHIFT.items() if name != "yaw" for k, v in kw.items()}
    cfg = AugmentConfig(rotation=10, width_shift=0.1, zoom=0.1, erasing=0.5, **every)
    augmented, clean = Augmenter(cfg).views(x, torch.Generator().manual_seed(3))
    assert torch.equal(augmented, Augmenter(cfg)(x, torch.Generator().manual_seed(3)))
    params = Augmenter(cfg).sample(x.shape, torch.Generator().manual_seed(3), x.device)
    undegraded = replace(params, low_res=None, blur_sigma=None, brightness=None, contrast=None, gamma=None,
                         noise_sigma=None, jpeg_quality=None, erase_box=torch.zeros_like(params.erase_box))
    assert torch.equal(clean, Augmenter(cfg).apply(x, undegraded))
    assert not torch.equal(clean, augmented) and not torch.equal(clean, x)
