"""Batch data augmentation on N×C×H×W float tensors, in the manner of Keras' ImageDataGenerator.

Every sample gets its own random affine transform (rotation, shift, shear, zoom) composed into a
single matrix and applied to the whole batch with one `F.affine_grid` + `F.grid_sample` call, so
the image is resampled once however many transforms are on. Horizontal flips are exact pixel
flips (no resampling) and random erasing runs last, on the transformed image.

Everything runs on the tensor's device. Random numbers are drawn on the generator's device (the
tensor's device when no generator is given) and then moved, so a seeded CPU generator gives the
same augmentation on CPU and CUDA.

Geometry is in pixels, about the image centre, with x to the right and y down:
rotation by a > 0 turns the content counter-clockwise on screen, shifts move it right/down,
shear s > 0 maps (x, y) to (x + tan(s)·y, y) (the bottom slides right), zoom z > 1 enlarges it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .options import option

Range = float | tuple[float, float]

# fill_mode -> grid_sample padding_mode
_PADDING = {"nearest": "border", "reflection": "reflection", "zeros": "zeros"}
_ERASE_AREA = (0.02, 0.2)  # fraction of the image
_ERASE_LOG_RATIO = (math.log(0.3), math.log(1 / 0.3))  # height / width, as in Zhong et al. 2017


@dataclass
class AugmentConfig:
    """Augmentation ranges. A number r means uniform in [-r, r]; a pair (lo, hi) means uniform in it.

    rotation: degrees. width_shift, height_shift: fractions of the width / height.
    shear: degrees. zoom: z means a scale factor in [1 - z, 1 + z]; a pair is the scale range itself.
    horizontal_flip: mirror half of the samples. erasing: probability of erasing one rectangle
    (2–20 % of the image, aspect ratio 0.3–3.3) per sample, filled per `erasing_fill`: "noise"
    (uniform between that sample's min and max, whatever the input normalisation) or "zero".
    fill_mode: what the affine transform shows outside the image: "nearest" (edge pixels),
    "reflection" or "zeros".
    """

    rotation: Range = option(10.0, "max rotation in degrees")
    width_shift: Range = option(0.1, "max horizontal shift (fraction of the width)")
    height_shift: Range = option(0.1, "max vertical shift (fraction of the height)")
    shear: Range = option(0.0, "max shear in degrees")
    zoom: Range = option(0.1, "max zoom (fraction)")
    horizontal_flip: bool = option(True, "mirror half of the images", flag="--flip")
    erasing: float = option(0.0, "probability of random erasing")
    erasing_fill: str = option("noise", "what fills an erased rectangle", choices=("noise", "zero"))
    fill_mode: str = option("nearest", "what shows outside the image after a transform",
                            choices=("nearest", "reflection", "zeros"))

    def __post_init__(self) -> None:
        for name in ("rotation", "width_shift", "height_shift", "shear", "zoom"):
            lo, hi = self.bounds(name)
            if lo > hi:
                raise ConfigError(f"augment {name}: range ({lo}, {hi}) is empty")
        if self.zoom_range()[0] <= 0:
            raise ConfigError(f"augment zoom: scale must stay positive, got {self.zoom!r}")
        if not 0.0 <= self.erasing <= 1.0:
            raise ConfigError(f"augment erasing: probability must be in [0, 1], got {self.erasing}")
        if self.erasing_fill not in ("noise", "zero"):
            raise ConfigError(f"augment erasing_fill: 'noise' or 'zero', got {self.erasing_fill!r}")
        if self.fill_mode not in _PADDING:
            raise ConfigError(f"augment fill_mode: one of {', '.join(_PADDING)}, got {self.fill_mode!r}")

    def bounds(self, name: str) -> tuple[float, float]:
        value = getattr(self, name)
        if isinstance(value, (int, float)):
            return -abs(float(value)), abs(float(value))
        lo, hi = value
        return float(lo), float(hi)

    def zoom_range(self) -> tuple[float, float]:
        if isinstance(self.zoom, (int, float)):
            return 1.0 - abs(self.zoom), 1.0 + abs(self.zoom)
        return self.bounds("zoom")

    @property
    def has_affine(self) -> bool:
        ranges = [self.bounds(n) for n in ("rotation", "width_shift", "height_shift", "shear")]
        return any(r != (0.0, 0.0) for r in ranges) or self.zoom_range() != (1.0, 1.0)


@dataclass
class AugmentParams:
    """Per-sample parameters of one augmentation draw (all tensors of length N, on one device).

    angle, shear: degrees; shift_x, shift_y: pixels; scale: zoom factor; flip: bool;
    erase_box: N×4 int64 (top, left, height, width), height 0 for samples not erased.
    """

    angle: torch.Tensor
    shift_x: torch.Tensor
    shift_y: torch.Tensor
    shear: torch.Tensor
    scale: torch.Tensor
    flip: torch.Tensor
    erase_box: torch.Tensor


class Augmenter:
    """`aug(x, generator)` -> a randomly augmented copy of the batch x (N×C×H×W float).

    Deterministic for a given generator state. With every transform off it returns x itself.
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape, generator, x.device), generator)

    def sample(
        self, shape: torch.Size | tuple[int, ...], generator: torch.Generator | None, device: torch.device
    ) -> AugmentParams:
        """Draw parameters for a batch of `shape` (N, C, H, W) using `generator`."""
        n, _, h, w = shape
        cfg = self.config
        gen_device = generator.device if generator is not None else torch.device(device)

        def uniform(lo: float, hi: float) -> torch.Tensor:
            u = torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64)
            return lo + (hi - lo) * u

        params = AugmentParams(
            angle=uniform(*cfg.bounds("rotation")),
            shift_x=uniform(*cfg.bounds("width_shift")) * w,
            shift_y=uniform(*cfg.bounds("height_shift")) * h,
            shear=uniform(*cfg.bounds("shear")),
            scale=uniform(*cfg.zoom_range()),
            flip=uniform(0.0, 1.0) < (0.5 if cfg.horizontal_flip else 0.0),
            erase_box=self._sample_boxes(n, h, w, uniform),
        )
        return AugmentParams(**{k: v.to(device) for k, v in vars(params).items()})

    def _sample_boxes(
        self, n: int, h: int, w: int, uniform: Callable[[float, float], torch.Tensor]
    ) -> torch.Tensor:
        """N×4 (top, left, height, width) rectangles of 2–20 % of the image; height 0 = not erased."""
        erase = uniform(0.0, 1.0) < self.config.erasing
        area = uniform(*_ERASE_AREA) * (h * w)
        ratio = uniform(*_ERASE_LOG_RATIO).exp()
        bh = (area * ratio).sqrt().round().clamp(1, h)
        bw = (area / bh).round().clamp(1, w)
        top = (uniform(0.0, 1.0) * (h - bh + 1)).floor()
        left = (uniform(0.0, 1.0) * (w - bw + 1)).floor()
        return torch.stack([top, left, bh * erase, bw], dim=1).long()

    def apply(
        self, x: torch.Tensor, params: AugmentParams, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply drawn (or hand-made) parameters: flip, then the affine transform, then erasing.

        `generator` only draws the noise that fills erased rectangles.
        """
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"expected a float N×C×H×W tensor, got {x.dtype} of shape {tuple(x.shape)}")
        cfg = self.config
        if cfg.horizontal_flip:
            x = torch.where(params.flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if cfg.has_affine:
            theta = affine_theta(params, x.shape[-2], x.shape[-1]).to(x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=_PADDING[cfg.fill_mode],
                              align_corners=False)
        if cfg.erasing > 0:
            x = self._erase(x, params.erase_box, generator)
        return x

    def _erase(self, x: torch.Tensor, box: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        h, w = x.shape[-2:]
        top, left, bh, bw = (v.view(-1, 1, 1) for v in box.T)
        rows = torch.arange(h, device=x.device).view(1, -1, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, -1)
        mask = (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)
        if self.config.erasing_fill == "zero":
            fill = torch.zeros_like(x)
        else:
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            device = generator.device if generator is not None else x.device
            u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
            fill = lo + (hi - lo) * u
        return torch.where(mask.unsqueeze(1), fill, x)


def affine_theta(params: AugmentParams, h: int, w: int) -> torch.Tensor:
    """N×2×3 matrices for `F.affine_grid` (align_corners=False): output -> input, normalised coords.

    The content moves by M = shift · rotation · shear · zoom (pixels, about the centre); sampling
    needs the inverse, expressed in affine_grid's [-1, 1] coordinates via S = diag(w/2, h/2).
    """
    a, s = torch.deg2rad(params.angle), torch.deg2rad(params.shear)
    cos, sin, one, zero = a.cos(), a.sin(), torch.ones_like(a), torch.zeros_like(a)
    rot = torch.stack([cos, sin, zero, -sin, cos, zero, zero, zero, one], 1).view(-1, 3, 3)
    shear = torch.stack([one, s.tan(), zero, zero, one, zero, zero, zero, one], 1).view(-1, 3, 3)
    z = params.scale
    zoom = torch.stack([z, zero, zero, zero, z, zero, zero, zero, one], 1).view(-1, 3, 3)
    sx, sy = params.shift_x, params.shift_y
    shift = torch.stack([one, zero, sx, zero, one, sy, zero, zero, one], 1).view(-1, 3, 3)
    forward = shift @ rot @ shear @ zoom
    to_norm = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], dtype=forward.dtype, device=forward.device))
    return (to_norm @ torch.linalg.inv(forward) @ torch.linalg.inv(to_norm))[:, :2]
