"""The one preprocessing every runtime path uses: frames in, the exported model's input tensor out.

It reads ``meta["preprocessing"]`` (written by the export from timm's data config), so calibration, the camera loop
and benchmarks resize, crop and normalise exactly as timm's eval transform does, and nobody re-types a mean or a
crop. OpenCV does the resizing when it is installed (it is fast on video frames), Pillow otherwise.
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


def preprocess(frames: np.ndarray | Sequence[np.ndarray], prep: dict, channel_order: str = "BGR") -> np.ndarray:
    """Frames (one ``[H, W, C]`` array or a list of them, any size) -> ``[B, 3, h, w]`` float32, normalised.

    Args:
        frames: images as OpenCV reads them (``channel_order="BGR"``) or as Pillow does (``"RGB"``).
        prep: ``meta["preprocessing"]`` of an exported model (input_size, interpolation, crop_pct, crop_mode,
            mean, std).
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
        height, width = resize_size(*img.shape[:2], prep)
        img = _resize(img, height, width, prep.get("interpolation", "bilinear"))
        top, left = int(round((height - out_h) / 2.0)), int(round((width - out_w) / 2.0))  # torchvision's centre crop
        crop = img[top:top + out_h, left:left + out_w]  # [h, w, 3]
        crop = crop[:, :, ::-1] if swap else crop  # RGB
        batch[i] = (crop.transpose(2, 0, 1).astype(np.float32) - mean) * inv_std
    return batch
