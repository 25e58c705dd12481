"""A procedural ImageFolder dataset: one shape per image on a cluttered, textured background.

Each image holds one object (its class: circle, square, triangle, ...) at a random position, scale, rotation and
colour, on a background of colour blobs, gratings, thin clutter strokes and pixel noise. The object covers a
minority of the patches, so which tokens a pruned model keeps decides whether it still sees the object.

Every image is drawn from its own generator, seeded by ``(seed, class index, image index)``: the same seed gives
the same bytes on every machine and for any ``--per-class`` (image ``i`` does not depend on how many follow), an
unseen seed gives a fresh held-out set. Drawing happens at 4x the size and is box-filtered down (anti-aliasing).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..outputs import writable_folder

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "arrow")
DEFAULT_CLASSES = 6  # the demo model's classes: the first six shapes
SUPERSAMPLE = 4


def _polygon(name: str) -> list[tuple[float, float]]:
    """The outline of a polygonal shape in unit coordinates (radius about 1), before rotation."""
    if name == "square":
        return [(math.cos(a), math.sin(a)) for a in np.arange(4) * math.pi / 2 + math.pi / 4]
    if name == "triangle":
        return [(math.cos(a), math.sin(a)) for a in np.arange(3) * 2 * math.pi / 3 - math.pi / 2]
    if name == "hexagon":
        return [(math.cos(a), math.sin(a)) for a in np.arange(6) * math.pi / 3]
    if name == "star":
        return [((1.0 if i % 2 == 0 else 0.42) * math.cos(a), (1.0 if i % 2 == 0 else 0.42) * math.sin(a))
                for i, a in enumerate(np.arange(10) * math.pi / 5 - math.pi / 2)]
    if name == "cross":
        w = 0.33
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
                (-w, -w)]
    if name == "arrow":
        return [(-1, -0.25), (0.2, -0.25), (0.2, -0.7), (1, 0), (0.2, 0.7), (0.2, 0.25), (-1, 0.25)]
    raise ValueError(f"not a polygon: {name}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Colour blobs + a grating + pixel noise: ``[size, size, 3]`` float in [0, 255]."""
    from PIL import Image

    cells = int(rng.integers(3, 7))
    blobs = rng.uniform(30, 225, (cells, cells, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(blobs).resize((size, size), Image.Resampling.BICUBIC), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size  # [S, S]
    angle, freq = rng.uniform(0, math.pi), rng.uniform(3, 12)
    grating = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + rng.uniform(0, 6.3))
    tint = rng.uniform(-30, 30, 3).astype(np.float32)
    noise = rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    return np.clip(base + grating[..., None] * tint + noise, 0, 255)


def _clutter(draw, rng: np.random.Generator, size: int) -> None:
    """Thin strokes and small outlined arcs in random colours: edges everywhere, none of them a class."""
    for _ in range(int(rng.integers(5, 12))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        width = int(rng.integers(1, 3)) * SUPERSAMPLE
        if rng.random() < 0.6:
            x0, y0 = rng.uniform(0, size, 2)
            length, angle = rng.uniform(0.1, 0.4) * size, rng.uniform(0, 2 * math.pi)
            draw.line([(x0, y0), (x0 + length * math.cos(angle), y0 + length * math.sin(angle))], fill=colour,
                      width=width)
        else:
            r = rng.uniform(0.03, 0.1) * size
            cx, cy = rng.uniform(0, size, 2)
            start = float(rng.uniform(0, 360))
            draw.arc([cx - r, cy - r, cx + r, cy + r], start, start + float(rng.uniform(60, 200)), fill=colour,
                     width=width)


def _object_colour(rng: np.random.Generator, local_mean: np.ndarray) -> tuple[int, int, int]:
    """A random colour at least 80 grey levels (mean over channels of |difference|) away from the background."""
    for _ in range(50):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - local_mean).mean() >= 80:
            break
    return tuple(int(c) for c in colour)


def draw_image(shape: str, rng: np.random.Generator, img_size: int):
    """One ``img_size`` x ``img_size`` RGB PIL image with one ``shape`` on a cluttered background."""
    from PIL import Image, ImageDraw

    size = img_size * SUPERSAMPLE
    canvas = Image.fromarray(_background(rng, size).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    _clutter(draw, rng, size)
    radius = rng.uniform(0.2, 0.36) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    angle = rng.uniform(0, 2 * math.pi)
    area = np.asarray(canvas, np.float32)[int(cy - radius):int(cy + radius), int(cx - radius):int(cx + radius)]
    colour = _object_colour(rng, area.reshape(-1, 3).mean(0))
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=int(radius * rng.uniform(0.3, 0.45)))
    else:
        cos, sin = math.cos(angle), math.sin(angle)
        draw.polygon([(cx + radius * (x * cos - y * sin), cy + radius * (x * sin + y * cos))
                      for x, y in _polygon(shape)], fill=colour)
    return canvas.resize((img_size, img_size), Image.Resampling.BOX)


def class_names(classes: int = DEFAULT_CLASSES) -> list[str]:
    """The first ``classes`` shapes; raises :class:`UsageError` outside 2..len(SHAPES)."""
    if not 2 <= classes <= len(SHAPES):
        raise UsageError(f"--classes must be in 2..{len(SHAPES)} ({', '.join(SHAPES)}), got {classes}")
    return list(SHAPES[:classes])


def make_dataset(root: str | os.PathLike, classes: int = DEFAULT_CLASSES, per_class: int = 500, img_size: int = 56,
                 seed: int = 0, progress: bool = True) -> Path:
    """Write ``root/<class>/<class>_<i>.png`` for every class; ``root`` must not exist or be empty.

    Written into a temporary folder beside ``root`` and renamed at the end, so an interrupted run leaves nothing
    half-made. Returns ``root``.
    """
    from tqdm import tqdm

    names = class_names(classes)
    if per_class < 1 or img_size < 8:
        raise UsageError(f"need --per-class >= 1 and --img-size >= 8, got {per_class} and {img_size}")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root} exists and is not an empty folder; nothing was written")
    parent = writable_folder(root.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=parent))
    try:
        for c, name in enumerate(tqdm(names, desc="make-dataset", disable=not progress)):
            (tmp / name).mkdir()
            for i in range(per_class):
                rng = np.random.default_rng([seed, c, i])
                draw_image(name, rng, img_size).save(tmp / name / f"{name}_{i:05d}.png", optimize=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
