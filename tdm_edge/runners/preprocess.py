"""The one preprocessing every runtime path uses: frames in, the exported model's input tensor out.

It reads ``meta["preprocessing"]`` (written by the export from timm's data config), so calibration, the camera loop
and benchmarks resize, crop and normalise exactly as timm's eval transform does, and nobody re-types a mean or a
crop. OpenCV does the resizing when it is installed (it is fast on video frames), Pillow otherwise.

Two ways to shrink a large frame (both end on the same pixel grid as timm's resize-then-crop):

* exact (default; calibration, evaluation): OpenCV's ``INTER_AREA`` over the whole frame, then the centre crop. On a
  1280x720 frame that one call costs about 6.5 ms of one core, most of it spent on pixels the crop throws away.
* ``fast=True`` (the camera loop): only the source pixels under the crop are read. An integer box filter (``INTER_AREA``
  by a whole factor k, OpenCV's fast path) shrinks them, then one bilinear ``warpAffine`` places every output pixel at
  the exact source position timm's grid puts it (no sub-pixel shift from cropping at whole pixels). About 0.8 ms at
  1280x720 -> 224; the result differs from the exact path by a little more than the exact path differs from timm
  (numbers in docs/video.md, asserted in tests/runners/test_preprocess.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import UsageError

# timm interpolation names -> OpenCV flags (shrinking always uses INTER_AREA, which antialiases like Pillow)
_CV2_INTERP = {"bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC", "nearest": "INTER_NEAREST",
               "lanczos": "INTER_LANCZOS4", "area": "INTER_AREA"}


def resize_size(height: int, width: int, prep: dict) -> tuple[int, int]:
    """The (height, width) timm's eval transform resizes to before its centre crop (shorter side to size/crop_pct)."""
    _, out_h, out_w = prep["input_size"]
    scale_size = math.floor(max(out_h, out_w) / prep.get("crop_pct", 1.0))
    if prep.get("crop_mode", "center") == "squash":
        return scale_size, scale_size
    if height <= width:
        return scale_size, max(1, int(scale_size * width / height))
    return max(1, int(scale_size * height / width)), scale_size


def to_rgb_uint8(frame: np.ndarray, channel_order: str = "BGR") -> np.ndarray:
    """Any frame OpenCV hands out -> ``[H, W, 3]`` uint8 RGB: grayscale, BGR(A)/RGB(A), 8 or 16 bit."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise UsageError(f"expected an image of shape [H, W], [H, W, 3] or [H, W, 4], got {list(frame.shape)}")
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise UsageError(f"expected uint8 or uint16 pixels, got {frame.dtype}")
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1] if channel_order.upper() == "BGR" else frame)


def _resize(rgb: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    if rgb.shape[:2] == (height, width):
        return rgb
    try:
        import cv2
    except ImportError:
        from PIL import Image

        resample = getattr(Image.Resampling, interpolation.upper(), Image.Resampling.BILINEAR)
        return np.asarray(Image.fromarray(rgb).resize((width, height), resample))
    shrinking = height < rgb.shape[0] and width < rgb.shape[1]
    flag = getattr(cv2, "INTER_AREA" if shrinking else _CV2_INTERP.get(interpolation, "INTER_LINEAR"))
    return cv2.resize(rgb, (width, height), interpolation=flag)


def crop_box(height: int, width: int, prep: dict) -> tuple[int, int, int, int]:
    """``(height, width, top, left)``: timm's resize target, and the centre crop's corner in it (torchvision's
    rounding)."""
    _, out_h, out_w = prep["input_size"]
    h, w = resize_size(height, width, prep)
    return h, w, int(round((h - out_h) / 2.0)), int(round((w - out_w) / 2.0))


def _shrink_crop_fast(img: np.ndarray, prep: dict):
    """The centre crop of timm's resized frame, read from the source pixels under it only; None when not worth it
    (no big shrink) or without OpenCV.

    Output pixel ``j`` of the crop covers source ``[u0 + j*s, u0 + (j+1)*s)`` (``s`` = source px per resized px,
    ``u0`` = the crop's corner in source px). A box filter by the whole factor ``k = floor(s)`` from the whole pixel
    ``x0 = floor(u0)`` gives intermediate pixel ``i`` centred at ``x0 + (i + 0.5) k``; so output ``j``, centred at
    ``u0 + (j + 0.5) s``, is read bilinearly at ``i = (u0 - x0 + (j + 0.5) s) / k - 0.5``.
    """
    try:
        import cv2
    except ImportError:
        return None  # the exact path resizes with Pillow

    _, out_h, out_w = prep["input_size"]
    src_h, src_w = img.shape[:2]
    res_h, res_w, top, left = crop_box(src_h, src_w, prep)
    sy, sx = src_h / res_h, src_w / res_w  # source px per resized px
    k = int(min(sy, sx))
    if k < 2:
        return None  # no big shrink: the exact path is already cheap
    uy, ux = top * sy, left * sx  # the crop's corner, source px
    y0, x0 = int(uy), int(ux)
    ny = min((src_h - y0) // k, math.ceil((uy - y0 + out_h * sy) / k) + 1)  # intermediate rows (+1: bilinear's reach)
    nx = min((src_w - x0) // k, math.ceil((ux - x0 + out_w * sx) / k) + 1)
    region = img[y0:y0 + ny * k, x0:x0 + nx * k]  # [ny*k, nx*k, 3], a view
    small = cv2.resize(region, (nx, ny), interpolation=cv2.INTER_AREA)  # [ny, nx, 3], exact box filter
    to_small = np.array([[sx / k, 0.0, (ux - x0 + 0.5 * sx) / k - 0.5],
                         [0.0, sy / k, (uy - y0 + 0.5 * sy) / k - 0.5]])  # output (x, y) -> intermediate (x, y)
    return cv2.warpAffine(small, to_small, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)  # [h, w, 3]


def _shrink_crop_exact(img: np.ndarray, prep: dict) -> np.ndarray:
    _, out_h, out_w = prep["input_size"]
    height, width, top, left = crop_box(*img.shape[:2], prep)
    img = _resize(img, height, width, prep.get("interpolation", "bilinear"))
    return img[top:top + out_h, left:left + out_w]  # [h, w, 3]


def preprocess(frames: np.ndarray | Sequence[np.ndarray], prep: dict, channel_order: str = "BGR",
               fast: bool = False) -> np.ndarray:
    """Frames (one ``[H, W, C]`` array or a list of them, any size) -> ``[B, 3, h, w]`` float32, normalised.

    Args:
        frames: images as OpenCV reads them (``channel_order="BGR"``) or as Pillow does (``"RGB"``).
        prep: ``meta["preprocessing"]`` of an exported model (input_size, interpolation, crop_pct, crop_mode,
            mean, std).
        fast: read only the pixels under the crop when shrinking by 2x or more (see the module docstring); needs
            OpenCV, falls back to the exact path without it.
    """
    if isinstance(frames, np.ndarray) and frames.ndim in (2, 3):
        frames = [frames]
    _, out_h, out_w = prep["input_size"]
    mean = np.asarray(prep["mean"], np.float32).reshape(3, 1, 1) * 255.0
    inv_std = 1.0 / (np.asarray(prep["std"], np.float32).reshape(3, 1, 1) * 255.0)
    batch = np.empty((len(frames), 3, out_h, out_w), np.float32)  # [B, 3, h, w]
    swap = channel_order.upper() == "BGR"
    for i, frame in enumerate(frames):
        # resized and cropped in the frame's own channel order, swapped on the crop: the same values (resizing treats
        # channels alike) without a strided copy of the whole frame
        img = to_rgb_uint8(np.asarray(frame), "RGB")  # [H, W, 3]
        crop = _shrink_crop_fast(img, prep) if fast else None
        crop = _shrink_crop_exact(img, prep) if crop is None else crop  # [h, w, 3]
        crop = crop[:, :, ::-1] if swap else crop  # RGB
        np.copyto(batch[i], crop.transpose(2, 0, 1), casting="unsafe")  # uint8 -> float32, [3, h, w]
    batch -= mean
    batch *= inv_std
    return batch

