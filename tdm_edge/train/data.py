"""ImageFolder data for training and evaluation: checked up front, transformed by timm's own factories.

A data folder is an ImageFolder (``DIR/<class>/<image>``); training takes ``DIR/train`` and ``DIR/val`` (the
ImageNet layout DeiT uses) unless a separate validation folder is given. Problems are found before any training
starts and reported in one line: no class folders, a class without images, files that are not images, classes that
differ between the training and validation folders or from a checkpoint's labels.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def _has_subfolders(folder: Path) -> bool:
    return any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())


def scan_image_folder(root: str | os.PathLike, verify: bool = True) -> list[str]:
    """The class names of an ImageFolder (sorted, as torchvision assigns indices); raises one-line UsageErrors.

    Args:
        root: the folder holding one sub-folder per class.
        verify: open every image's header with Pillow (catches truncated or mislabelled non-image files).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"data folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UsageError(f"{root} has no class folders (expected {root}/<class>/<image>)")
    stray = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if stray:
        raise UsageError(f"{root} has images outside class folders (e.g. {stray[0]}); put each in {root}/<class>/")
    splits = [name for name in ("train", "val") if name in classes]
    if splits and all(not _has_images(root / name) and _has_subfolders(root / name) for name in splits):
        raise UsageError(f"{root} holds the splits {'/, '.join(splits)}/ rather than class folders: pass "
                         f"{root / splits[-1]} (eval) or {root} with tdm-edge train --data")
    for name in classes:
        files = [p for p in (root / name).iterdir() if p.is_file() and not p.name.startswith(".")]
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise UsageError(f"class folder {root / name} has no images")
        if len(images) != len(files):
            other = next(p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES)
            raise UsageError(f"{other} is not an image (suffixes: {' '.join(IMAGE_SUFFIXES)})")
        if verify:
            for path in images:
                try:
                    with Image.open(path) as img:
                        img.verify()
                except (UnidentifiedImageError, OSError, SyntaxError) as err:
                    raise UsageError(f"{path} is not a readable image ({type(err).__name__})") from None
    return classes


def check_labels(found: list[str], expected: list[str], what: str, where: str | os.PathLike) -> None:
    """Raise a one-line UsageError when a data folder's classes differ from the expected labels."""
    if found != expected:
        missing = [c for c in expected if c not in found]
        extra = [c for c in found if c not in expected]
        detail = "; ".join(part for part in (f"missing {missing}" if missing else "",
                                              f"unexpected {extra}" if extra else "") if part) or "different order"
        raise UsageError(f"the classes of {where} do not match {what} ({detail})")


def split_folders(data: str | os.PathLike, val: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(train, val)`` folders: ``DATA/train`` and ``DATA/val`` unless ``val`` is given (then ``DATA`` itself)."""
    data = Path(data)
    if val is not None:
        return data, Path(val)
    if not (data / "train").is_dir() or not (data / "val").is_dir():
        raise UsageError(f"{data} needs train/ and val/ sub-folders (ImageFolders), or pass --val DIR")
    return data / "train", data / "val"


def transforms(model, *, training: bool, scale: tuple[float, float] = (0.6, 1.0), hflip: float = 0.5,
               color_jitter: float = 0.0, auto_augment: str | None = None, reprob: float = 0.0):
    """timm's train or eval transform from the model's data config (mean, std, size, crop, interpolation)."""
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config({}, model=model)
    if not training:
        return eval_transform(cfg)
    return create_transform(cfg["input_size"], is_training=True, scale=scale, hflip=hflip, color_jitter=color_jitter,
                            auto_augment=auto_augment, re_prob=reprob, interpolation=cfg["interpolation"],
                            mean=cfg["mean"], std=cfg["std"])


def eval_transform(cfg: dict):
    """timm's eval transform from a data config: timm's own, or the ``preprocessing`` an ONNX export records."""
    from timm.data import create_transform

    keys = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")
    return create_transform(**{k: cfg[k] for k in keys}, is_training=False)


def image_folder(root: str | os.PathLike, transform):
    from torchvision.datasets import ImageFolder

    return ImageFolder(os.fspath(root), transform=transform)
