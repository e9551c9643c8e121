"""Decode any image a user may hand us into a uint8 NumPy array, or fail with one clear line."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Literal, Union

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageError

# Larger images are refused rather than risking the machine's memory (a "decompression bomb").
MAX_PIXELS = 120_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageInput = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]
Mode = Literal["gray", "rgb"]


def _to_mode(img: Image.Image, mode: Mode, name: str) -> np.ndarray:
    img = ImageOps.exif_transpose(img) if img.format == "JPEG" else img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: scale the real range to 0..255 instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        img = Image.fromarray(arr.round().astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    target = "L" if mode == "gray" else "RGB"
    if img.mode != target:
        img = img.convert(target)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.size == 0:
        raise ImageError(f"{name}: image has no pixels")
    return arr


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of a uint8 H×W×3 RGB array, the weights Pillow's convert("L") uses; each pixel's
    gray depends on that pixel alone, so converting part of an image gives the same pixels there."""
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).round().astype(np.uint8)


def _array_to_mode(arr: np.ndarray, mode: Mode, name: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: expected an H×W, H×W×3 or H×W×4 array, got shape {arr.shape}")
    if arr.size == 0:
        raise ImageError(f"{name}: image has no pixels")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    if mode == "gray":
        return np.ascontiguousarray(rgb_to_gray(arr) if arr.ndim == 3 else arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def load_image(source: ImageInput, mode: Mode = "rgb", name: str | None = None) -> np.ndarray:
    """Return `source` as uint8 H×W (gray) or H×W×3 (rgb).

    `source` may be a path, encoded bytes, a PIL image or a NumPy array (gray, RGB or RGBA;
    arrays are taken as RGB order). Raises `ImageError` naming the file for anything unreadable.
    """
    if isinstance(source, np.ndarray):
        return _array_to_mode(source, mode, name or "array")
    if isinstance(source, Image.Image):
        return _to_mode(source, mode, name or "image")
    if isinstance(source, (bytes, bytearray)):
        label = name or "image bytes"
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        stream = Path(source)
        label = name or str(stream)
        if not stream.exists():
            raise ImageError(f"{label}: no such file")
        if stream.is_dir():
            raise ImageError(f"{label}: is a directory, expected an image file")
        if stream.stat().st_size == 0:
            raise ImageError(f"{label}: file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as img:
                img.load()
                return _to_mode(img, mode, label)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{label}: image too large ({exc}); limit is {MAX_PIXELS:,} pixels") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not an image file Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: corrupt or truncated image ({exc})") from exc
    except MemoryError as exc:
        raise ImageError(f"{label}: not enough memory to decode this image") from exc


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """`size`×`size` copy of a gray image: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[:2] == (size, size):
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
