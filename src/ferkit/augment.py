"""Batch data augmentation on N×C×H×W float tensors, in the manner of Keras' ImageDataGenerator.

Every sample gets its own random affine transform (rotation, shift, shear, zoom) composed into a
single matrix and applied to the whole batch with one `F.affine_grid` + `F.grid_sample` call, so
the image is resampled once however many transforms are on. Horizontal flips are exact pixel
flips (no resampling) and random erasing runs last, on the transformed image.

Transforms aimed at the shift from FER2013 to faces in photos follow the affine step, in this order:
aspect jitter (an anisotropic zoom, folded into the affine matrix), a head turn (the face drawn on a
vertical cylinder and turned about its axis, folded into the same sampling grid), low resolution (down
to a random fraction of the size and back up), Gaussian blur, brightness / contrast / gamma, Gaussian
noise and JPEG compression. The last four work on pixel values in [0, 1] and clamp to it: the trainer
hands the augmenter normalised input, x = (pixels − mean) / std, and says `mean` and `std` when it calls it.
Mixup and cutmix change the targets too, so they are `mix_batch`, which the trainer calls after the
augmenter, where the loss sees the mixed targets.

Every transform is off by default and draws nothing from the generator while off, so turning one on
leaves the draws (and results) of the others as they were.

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

import cv2
import numpy as np
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

    The photo-shift transforms are numbers, never ranges. aspect a: the width over the height changes by
    a factor in [1/(1+a), 1+a] (log-uniform; the area is kept).
    yaw y: the face turns by an angle uniform in [-y, y] degrees, as if drawn on a vertical cylinder as
    wide as the frame (`turn_grid`): the far side narrows and the features move towards it.
    low_res p: probability of downscaling (area) to a fraction in [low_res_scale, 1] of each side and
    back up (bilinear, as small detected faces are). blur p: probability of a Gaussian blur with sigma
    uniform in [0, blur_sigma] pixels. noise p: probability of Gaussian noise with a standard deviation
    uniform in [0, noise_sigma] of the pixel range. brightness b: add [-b, b] of the pixel range;
    contrast c: scale about the image's mean by [1 - c, 1 + c]; gamma g: raise to a power in
    [1/(1+g), 1+g] (log-uniform). jpeg p: probability of JPEG compression at a quality uniform in
    [jpeg_quality, 95]. mixup α, cutmix α: Beta(α, α) share of each sample mixed with its partner in the
    batch (see `mix_batch`); 0 turns them off.
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
    aspect: float = option(0.0, "max aspect-ratio change: width/height scaled by [1/(1+a), 1+a]")
    yaw: float = option(0.0, "max head turn in degrees (the face on a vertical cylinder, turned)")
    low_res: float = option(0.0, "probability of downscaling to a random fraction and back up")
    low_res_scale: float = option(0.35, "smallest fraction of each side for --low-res")
    blur: float = option(0.0, "probability of a Gaussian blur")
    blur_sigma: float = option(1.5, "largest blur sigma in pixels (uniform from 0)")
    noise: float = option(0.0, "probability of Gaussian noise")
    noise_sigma: float = option(0.04, "largest noise standard deviation (fraction of the pixel range)")
    brightness: float = option(0.0, "max brightness shift (fraction of the pixel range)")
    contrast: float = option(0.0, "max contrast change: a factor in [1 - c, 1 + c] about the mean")
    gamma: float = option(0.0, "max gamma change: an exponent in [1/(1+g), 1+g]")
    jpeg: float = option(0.0, "probability of JPEG compression")
    jpeg_quality: int = option(30, "lowest JPEG quality for --jpeg (uniform up to 95)")
    mixup: float = option(0.0, "mixup: Beta(α, α) share of a partner image and its target (0 = off)",
                          metavar="ALPHA")
    cutmix: float = option(0.0, "cutmix: Beta(α, α) share of a partner's rectangle and target (0 = off; "
                           "with mixup, half the samples each)", metavar="ALPHA")

    def __post_init__(self) -> None:
        for name in ("rotation", "width_shift", "height_shift", "shear", "zoom"):
            lo, hi = self.bounds(name)
            if lo > hi:
                raise ConfigError(f"augment {name}: range ({lo}, {hi}) is empty")
        if self.zoom_range()[0] <= 0:
            raise ConfigError(f"augment zoom: scale must stay positive, got {self.zoom!r}")
        self._check_number("erasing", 0.0, 1.0, "a probability in [0, 1]")  # a recipe may give a pair
        if self.erasing_fill not in ("noise", "zero"):
            raise ConfigError(f"augment erasing_fill: 'noise' or 'zero', got {self.erasing_fill!r}")
        if self.fill_mode not in _PADDING:
            raise ConfigError(f"augment fill_mode: one of {', '.join(_PADDING)}, got {self.fill_mode!r}")
        self._check_photo_shift()

    def _check_photo_shift(self) -> None:
        for name in ("low_res", "blur", "noise", "jpeg"):
            self._check_number(name, 0.0, 1.0, "a probability in [0, 1]")
        for name in ("aspect", "blur_sigma", "noise_sigma", "brightness", "gamma", "mixup", "cutmix"):
            self._check_number(name, 0.0, math.inf, "a number ≥ 0")
        self._check_number("contrast", 0.0, 1.0, "a number in [0, 1]")
        self._check_number("yaw", 0.0, 60.0, "degrees in [0, 60]")
        self._check_number("low_res_scale", 1e-3, 1.0, "a fraction in (0, 1]")
        if isinstance(self.jpeg_quality, bool) or not isinstance(self.jpeg_quality, int) \
                or not 1 <= self.jpeg_quality <= 95:
            raise ConfigError(f"augment jpeg_quality: an integer in [1, 95], got {self.jpeg_quality!r}")

    def _check_number(self, name: str, lo: float, hi: float, what: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ConfigError(f"augment {name}: must be {what}, got {value!r}")

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
        return any(r != (0.0, 0.0) for r in ranges) or self.zoom_range() != (1.0, 1.0) or self.aspect > 0 \
            or self.yaw > 0

    @property
    def has_pixel_transforms(self) -> bool:
        """Whether a transform that works on pixel values in [0, 1] is on (tone, noise, JPEG)."""
        return any(v > 0 for v in (self.brightness, self.contrast, self.gamma, self.noise, self.jpeg))

    @property
    def mixes(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


def everything_off() -> dict:
    """The options that turn every augmentation off (`ferkit train --no-augment`)."""
    return {"rotation": 0.0, "width_shift": 0.0, "height_shift": 0.0, "shear": 0.0, "zoom": 0.0,
            "horizontal_flip": False, "erasing": 0.0, "aspect": 0.0, "low_res": 0.0, "blur": 0.0,
            "noise": 0.0, "brightness": 0.0, "contrast": 0.0, "gamma": 0.0, "jpeg": 0.0, "mixup": 0.0,
            "cutmix": 0.0}


@dataclass
class AugmentParams:
    """Per-sample parameters of one augmentation draw (all tensors of length N, on one device).

    angle, shear: degrees; shift_x, shift_y: pixels; scale: zoom factor; flip: bool;
    erase_box: N×4 int64 (top, left, height, width), height 0 for samples not erased.
    The photo-shift parameters are None while their transform is off. aspect: width/height factor;
    low_res: N×2 int64 (height, width) to downscale to, 0 for samples left alone; blur_sigma (pixels) and
    noise_sigma (pixel range): 0 for samples left alone; brightness, contrast, gamma: the shift, factor and
    exponent; jpeg_quality: int64, 0 for samples left alone; yaw: degrees.
    """

    angle: torch.Tensor
    shift_x: torch.Tensor
    shift_y: torch.Tensor
    shear: torch.Tensor
    scale: torch.Tensor
    flip: torch.Tensor
    erase_box: torch.Tensor
    aspect: torch.Tensor | None = None
    low_res: torch.Tensor | None = None
    blur_sigma: torch.Tensor | None = None
    brightness: torch.Tensor | None = None
    contrast: torch.Tensor | None = None
    gamma: torch.Tensor | None = None
    noise_sigma: torch.Tensor | None = None
    jpeg_quality: torch.Tensor | None = None
    yaw: torch.Tensor | None = None


class Augmenter:
    """`aug(x, generator)` -> a randomly augmented copy of the batch x (N×C×H×W float).

    Deterministic for a given generator state. With every transform off it returns x itself.
    `mean`, `std`: x = (pixels − mean) / std with pixels in [0, 1] (the defaults: x is the pixels).
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, *, mean: float = 0.0,
                 std: float = 1.0) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape, generator, x.device), generator, mean=mean, std=std)

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
            **self._sample_photo_shift(n, h, w, uniform),
        )
        return AugmentParams(**{k: v if v is None else v.to(device) for k, v in vars(params).items()})

    def _sample_photo_shift(
        self, n: int, h: int, w: int, uniform: Callable[[float, float], torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The photo-shift parameters of the transforms that are on (the others draw nothing)."""
        cfg = self.config

        def chosen(probability: float) -> torch.Tensor:
            return uniform(0.0, 1.0) < probability

        def log_uniform(spread: float) -> torch.Tensor:
            return uniform(-math.log1p(spread), math.log1p(spread)).exp()

        out = {}
        if cfg.aspect > 0:
            out["aspect"] = log_uniform(cfg.aspect)
        if cfg.low_res > 0:
            keep, fraction = chosen(cfg.low_res), uniform(cfg.low_res_scale, 1.0)
            size = torch.stack([(fraction * h).round().clamp(1, h), (fraction * w).round().clamp(1, w)], 1)
            full = (size == torch.tensor([h, w], dtype=size.dtype, device=size.device)).all(1)
            out["low_res"] = (size * (keep & ~full).unsqueeze(1)).long()
        if cfg.blur > 0:
            out["blur_sigma"] = chosen(cfg.blur) * uniform(0.0, cfg.blur_sigma)
        if cfg.brightness > 0:
            out["brightness"] = uniform(-cfg.brightness, cfg.brightness)
        if cfg.contrast > 0:
            out["contrast"] = uniform(1.0 - cfg.contrast, 1.0 + cfg.contrast)
        if cfg.gamma > 0:
            out["gamma"] = log_uniform(cfg.gamma)
        if cfg.noise > 0:
            out["noise_sigma"] = chosen(cfg.noise) * uniform(0.0, cfg.noise_sigma)
        if cfg.jpeg > 0:
            quality = uniform(cfg.jpeg_quality, 96.0).floor().clamp(max=95.0)
            out["jpeg_quality"] = (chosen(cfg.jpeg) * quality).long()
        if cfg.yaw > 0:  # drawn last, so that turning it on leaves the other draws as they were
            out["yaw"] = uniform(-cfg.yaw, cfg.yaw)
        return out

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
        self, x: torch.Tensor, params: AugmentParams, generator: torch.Generator | None = None, *,
        mean: float = 0.0, std: float = 1.0,
    ) -> torch.Tensor:
        """Apply drawn (or hand-made) parameters: flip, the affine transform, the photo-shift transforms
        (see the module docstring), then erasing. x = (pixels − mean) / std, pixels in [0, 1].

        `generator` only draws the Gaussian noise and the noise that fills erased rectangles.
        """
        return self._degrade(self.apply_geometry(x, params), params, generator, mean, std)

    def _degrade(self, x: torch.Tensor, params: AugmentParams, generator: torch.Generator | None,
                 mean: float, std: float) -> torch.Tensor:
        """What `apply` does after the geometry: the photo-shift transforms, then erasing."""
        cfg = self.config
        if params.low_res is not None:
            x = low_resolution(x, params.low_res)
        if params.blur_sigma is not None:
            x = gaussian_blur(x, params.blur_sigma)
        if cfg.has_pixel_transforms:
            x = self._on_pixels(x, params, generator, mean, std)
        if cfg.erasing > 0:
            x = self._erase(x, params.erase_box, generator)
        return x

    def apply_geometry(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """The flip and the affine step (with aspect and head turn) of `apply` alone: the face moved as the
        augmented one, without the photo-shift transforms and erasing. Draws nothing."""
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"expected a float N×C×H×W tensor, got {x.dtype} of shape {tuple(x.shape)}")
        cfg = self.config
        if cfg.horizontal_flip:
            x = torch.where(params.flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if cfg.has_affine:
            theta = affine_theta(params, x.shape[-2], x.shape[-1]).to(x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            if params.yaw is not None:
                grid = turn_grid(grid, params.yaw)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=_PADDING[cfg.fill_mode],
                              align_corners=False)
        return x

    def views(self, x: torch.Tensor, generator: torch.Generator | None = None, *, mean: float = 0.0,
              std: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(the augmented batch, the same batch with its geometry alone): one draw, two views of it, for a
        teacher that sees the face as the student does but without the degradations."""
        params = self.sample(x.shape, generator, x.device)
        moved = self.apply_geometry(x, params)
        return self._degrade(moved, params, generator, mean, std), moved

    def _on_pixels(self, x: torch.Tensor, params: AugmentParams, generator: torch.Generator | None,
                   mean: float, std: float) -> torch.Tensor:
        """Tone, noise and JPEG on the pixels (x · std + mean, in [0, 1]); samples none of them touched
        come back exactly as they were."""
        pixels = x * std + mean
        changed = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        if any(v is not None for v in (params.brightness, params.contrast, params.gamma)):
            pixels, changed = adjust_tone(pixels, params.brightness, params.contrast, params.gamma), ~changed
        if params.noise_sigma is not None:
            pixels = add_noise(pixels, params.noise_sigma, generator)
            changed |= params.noise_sigma > 0
        if params.jpeg_quality is not None:
            pixels = jpeg_compress(pixels, params.jpeg_quality)
            changed |= params.jpeg_quality > 0
        return torch.where(changed.view(-1, 1, 1, 1), (pixels - mean) / std, x)

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
    zx = zy = params.scale
    if params.aspect is not None:  # anisotropic zoom: the width over the height changes by `aspect`
        zx, zy = zx * params.aspect.sqrt(), zy / params.aspect.sqrt()
    zoom = torch.stack([zx, zero, zero, zero, zy, zero, zero, zero, one], 1).view(-1, 3, 3)
    sx, sy = params.shift_x, params.shift_y
    shift = torch.stack([one, zero, sx, zero, one, sy, zero, zero, one], 1).view(-1, 3, 3)
    forward = shift @ rot @ shear @ zoom
    to_norm = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], dtype=forward.dtype, device=forward.device))
    return (to_norm @ torch.linalg.inv(forward) @ torch.linalg.inv(to_norm))[:, :2]


def turn_grid(grid: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """A sampling grid (N×H×W×2, normalised) that also turns each face by `degrees` about a vertical axis.

    The face is taken as drawn on a cylinder whose radius is half the frame's width: a point seen at x
    (in [-1, 1]) on the turned face sits at asin(x) − turn on the cylinder, so it comes from
    x₀ = sin(asin(x) − turn) of the frontal image. Points beyond the cylinder's edge take its edge.
    """
    turn = torch.deg2rad(degrees).to(grid.dtype).view(-1, 1, 1)
    x = torch.sin(torch.asin(grid[..., 0].clamp(-1.0, 1.0)) - turn)
    return torch.stack([x, grid[..., 1]], dim=-1)


def low_resolution(x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Each sample downscaled (area) to its `size` (N×2: height, width; 0 = left alone) and back up
    (bilinear, as a small face is resized for the model). One pair of resizes per distinct size."""
    h, w = x.shape[-2:]
    chosen = size[:, 0] > 0
    if not bool(chosen.any()):
        return x
    out = x.clone()
    for small_h, small_w in torch.unique(size[chosen], dim=0).tolist():
        index = ((size[:, 0] == small_h) & (size[:, 1] == small_w)).nonzero().flatten()
        small = F.interpolate(x[index], size=(small_h, small_w), mode="area")
        out[index] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return out


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each sample blurred with its own `sigma` (pixels; 0 = left alone): one grouped, separable
    convolution for the batch, edges replicated."""
    if not bool((sigma > 0).any()):
        return x
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    spread = sigma.to(x.dtype).clamp_min(1e-3).view(-1, 1)  # a tiny sigma is a unit impulse
    kernel = torch.exp(-0.5 * (offsets / spread) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)
    planes = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="replicate")
    planes = F.conv2d(planes, kernel.view(n * c, 1, 1, -1), groups=n * c)
    planes = F.conv2d(planes, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return torch.where((sigma > 0).view(-1, 1, 1, 1), planes.view(n, c, h, w), x)


def adjust_tone(pixels: torch.Tensor, brightness: torch.Tensor | None, contrast: torch.Tensor | None,
                gamma: torch.Tensor | None) -> torch.Tensor:
    """Pixels in [0, 1] raised to `gamma`, scaled by `contrast` about each image's mean, shifted by
    `brightness` (each per sample; None = that one off), clamped to [0, 1]."""
    def per_sample(value: torch.Tensor) -> torch.Tensor:
        return value.to(pixels.dtype).view(-1, 1, 1, 1)

    pixels = pixels.clamp(0.0, 1.0)
    if gamma is not None:
        pixels = pixels.pow(per_sample(gamma))
    if contrast is not None:
        centre = pixels.mean(dim=(1, 2, 3), keepdim=True)
        pixels = (pixels - centre) * per_sample(contrast) + centre
    if brightness is not None:
        pixels = pixels + per_sample(brightness)
    return pixels.clamp(0.0, 1.0)


def add_noise(pixels: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Pixels in [0, 1] plus Gaussian noise of standard deviation `sigma` per sample, clamped to [0, 1]."""
    device = generator.device if generator is not None else pixels.device
    noise = torch.randn(pixels.shape, generator=generator, device=device, dtype=pixels.dtype)
    noise = noise.to(pixels.device)
    return (pixels + sigma.to(pixels.dtype).view(-1, 1, 1, 1) * noise).clamp(0.0, 1.0)


def jpeg_compress(pixels: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] of each sample with a `quality` (1–95; 0 = left alone) through a JPEG encode and
    decode (OpenCV, on the CPU), each channel as a gray image."""
    index = (quality > 0).nonzero().flatten()
    if len(index) == 0:
        return pixels
    chosen = (pixels[index] * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    decoded = np.stack([[_jpeg_round_trip(plane, q) for plane in image]
                        for image, q in zip(chosen, quality[index].tolist())])
    out = pixels.clone()
    out[index] = torch.from_numpy(decoded).to(device=pixels.device, dtype=pixels.dtype) / 255
    return out


def _jpeg_round_trip(plane: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", plane, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def mix_batch(x: torch.Tensor, targets: torch.Tensor, num_classes: int, mixup: float, cutmix: float,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup and cutmix: each sample i mixed with its partner n-1-i, its share λ_i ~ Beta(α, α) of its own
    image and target. Mixup blends the images; cutmix pastes the partner's rectangle (λ is then the
    share of the image kept). With both α > 0, half the samples each. `targets`: class indices N or
    distributions N×C; returns (images, distributions N×C). Deterministic for a generator state."""
    n, _, h, w = x.shape
    device = generator.device if generator is not None else x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, device=device, dtype=torch.float64)

    # NumPy draws the Beta shares (torch's Beta takes no generator), seeded from the generator
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator, device=device)))
    cut = uniform(0.0, 1.0) < 0.5 if mixup > 0 and cutmix > 0 else torch.full((n,), cutmix > 0, device=device)
    share = torch.from_numpy(np.where(cut.cpu().numpy(), rng.beta(cutmix or 1.0, cutmix or 1.0, n),
                                      rng.beta(mixup or 1.0, mixup or 1.0, n)))
    inside, share = _cut_boxes(share.to(device), cut, h, w, uniform)
    partner, weight = x.flip(0), share.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    blended = weight * x + (1 - weight) * partner
    mixed = torch.where(cut.to(x.device).view(-1, 1, 1, 1), torch.where(inside.to(x.device), partner, x),
                        blended)
    soft = F.one_hot(targets, num_classes).to(x.dtype) if targets.ndim == 1 else targets.to(x.dtype)
    weight = share.to(device=soft.device, dtype=soft.dtype).view(-1, 1)
    return mixed, weight * soft + (1 - weight) * soft.flip(0)


def _cut_boxes(share: torch.Tensor, cut: torch.Tensor, h: int, w: int,
               uniform: Callable[[float, float], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cutmix rectangles of 1 − share of the image (clipped at its edges), as N×1×H×W masks, and the
    share each sample keeps: the clipped rectangle's for cutmix samples, `share` for the others."""
    side = (1 - share).sqrt()
    centre_y, centre_x = uniform(0.0, h), uniform(0.0, w)
    top, bottom = (centre_y - side * h / 2).round().clamp(0, h), (centre_y + side * h / 2).round().clamp(0, h)
    left, right = (centre_x - side * w / 2).round().clamp(0, w), (centre_x + side * w / 2).round().clamp(0, w)
    rows = torch.arange(h, device=share.device).view(1, -1, 1)
    cols = torch.arange(w, device=share.device).view(1, 1, -1)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < bottom.view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < right.view(-1, 1, 1)) & cut.view(-1, 1, 1))
    kept = 1 - (bottom - top) * (right - left) / (h * w)
    return inside.unsqueeze(1), torch.where(cut, kept, share)
