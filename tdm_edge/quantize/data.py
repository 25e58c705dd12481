"""Calibration (and comparison) images: an image folder, a video sampled evenly, or synthetic scenes.

Every source yields OpenCV BGR frames of any size; :func:`tdm_edge.runners.preprocess.preprocess` turns them into the
model's input with the model's own preprocessing, so calibration sees exactly what the runtime sees.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


@dataclass
class ImageSet:
    """Preprocessed images ``[N, 3, H, W]`` float32 and where they came from."""

    images: np.ndarray
    source: str  # "images:DIR", "video:FILE" or "synthetic:seed=S"
    names: list[str]

    @property
    def sha256(self) -> str:
        """Hash of the preprocessed tensors: the same frames with the same preprocessing give the same hash."""
        return hashlib.sha256(np.ascontiguousarray(self.images).tobytes()).hexdigest()

    def record(self) -> dict:
        return {"count": len(self.images), "source": self.source, "sha256": self.sha256}


def _cv2():
    try:
        import cv2
    except ImportError:
        raise UsageError("reading images needs OpenCV: pip install opencv-python (or tdm-edge[camera])") from None
    return cv2


def list_images(directory: str | os.PathLike) -> list[Path]:
    """Image files in ``directory`` and its sub-folders (an ImageFolder's class folders), by extension, sorted by
    path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory" if directory.exists() else f"{directory}: no such directory")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UsageError(f"{directory}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def evenly(count: int, num: int) -> list[int]:
    """``min(num, count)`` indices spread evenly over ``range(count)``, first and last included."""
    if num >= count:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, num)})


def folder_frames(directory: str | os.PathLike, num: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Decode (cv2.imread) up to ``num`` images of a folder, spread evenly over its sorted listing.

    Unreadable files are skipped with one warning line; a folder with none readable raises :class:`UsageError`.
    """
    cv2 = _cv2()
    files = list_images(directory)
    chosen = [files[i] for i in evenly(len(files), num)] if num else files
    frames, names, bad = [], [], []
    for path in chosen:
        frame = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
        if frame is None:
            bad.append(path.name)
        else:
            frames.append(frame)
            names.append(path.name)
    if not frames:
        raise UsageError(f"{directory}: none of the {len(chosen)} image files could be decoded")
    if bad:
        print(f"tdm-edge: warning: skipped {len(bad)} unreadable image(s) in {directory}: {', '.join(bad[:3])}"
              f"{' ...' if len(bad) > 3 else ''}", file=sys.stderr)
    return frames, names


def video_frames(path: str | os.PathLike, num: int) -> tuple[list[np.ndarray], list[str]]:
    """``num`` frames of a video (cv2.VideoCapture), sampled evenly over its length, not the first ``num``.

    The video is read through once (seeking is unreliable in many containers) and the chosen frames kept.
    """
    cv2 = _cv2()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    cap = cv2.VideoCapture(os.fspath(path))
    try:
        if not cap.isOpened():
            raise UsageError(f"{path}: OpenCV cannot open this video")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:  # no frame count in the container: read it all, then choose
            everything = list(_read_all(cap))
            picks = evenly(len(everything), num)
            frames, names = [everything[i] for i in picks], [f"frame{i}" for i in picks]
        else:
            wanted, frames, names = set(evenly(total, num)), [], []
            for i, frame in enumerate(_read_all(cap)):
                if i in wanted:
                    frames.append(frame)
                    names.append(f"frame{i}")
    finally:
        cap.release()
    if not frames:
        raise UsageError(f"{path}: no frame could be decoded")
    return frames, names


def _read_all(cap):
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame


def synthetic_frames(num: int, size: int = 256, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """``num`` BGR scenes drawn with OpenCV: a gradient background and a few filled shapes of random colours.

    Only for trying the pipeline without data: a calibration set should look like what the camera sees.
    """
    cv2 = _cv2()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size  # [S, S]
    frames = []
    for _ in range(num):
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (xx if rng.random() < 0.5 else yy)[..., None]  # [S, S, 1]
        img = np.ascontiguousarray(((1 - t) * c0 + t * c1).astype(np.uint8))  # [S, S, 3]
        for _ in range(int(rng.integers(1, 5))):
            color = tuple(int(v) for v in rng.integers(0, 256, 3))
            cx, cy = (int(v) for v in rng.integers(size // 8, size - size // 8, 2))
            r = int(rng.integers(size // 16, size // 4))
            if rng.random() < 0.5:
                cv2.circle(img, (cx, cy), r, color, -1)
            else:
                cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
        frames.append(img)
    return frames, [f"synthetic{i}" for i in range(num)]


def load_images(prep: dict, *, images: str | None = None, video: str | None = None, synthetic: int | None = None,
                num: int | None = None, seed: int = 0) -> ImageSet:
    """Frames from exactly one source, preprocessed with ``prep`` (``meta["preprocessing"]``).

    Args:
        prep: the model's preprocessing metadata.
        images / video / synthetic: a folder, a video file, or a number of synthetic scenes.
        num: at most this many frames (spread evenly over the folder or video); ``None``: all of the folder.
    """
    from ..runners.preprocess import preprocess

    given = [s for s in (images, video, synthetic) if s is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --images DIR, --video FILE, --synthetic N")
    if images is not None:
        frames, names = folder_frames(images, num)
        source = f"images:{os.path.abspath(images)}"
    elif video is not None:
        frames, names = video_frames(video, num or 512)
        source = f"video:{os.path.abspath(video)}"
    else:
        if synthetic < 1:
            raise UsageError(f"--synthetic needs a positive count, got {synthetic}")
        frames, names = synthetic_frames(min(synthetic, num or synthetic), seed=seed)
        source = f"synthetic:seed={seed}"
    return ImageSet(preprocess(frames, prep, channel_order="BGR"), source, names)
