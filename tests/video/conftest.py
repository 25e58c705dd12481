"""Fixtures for the video loop: a tiny exported BAT ViT with labels, generated videos and image folders."""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import tiny_vit

LABELS = [f"thing {i}" for i in range(10)]


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A tiny BAT ViT (32 px, 4 px patches: an 8x8 grid, 65 -> 46 -> 33 -> 24 tokens) exported with labels."""
    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.reduce.patch import patch_vit

    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(patch_vit(tiny_vit(), "bat", 0.7), path, labels=LABELS, name="tiny_bat", verify=False)
    return path


def frames(count: int, size=(96, 64), seed: int = 0) -> list[np.ndarray]:
    """``count`` BGR frames (``size`` = (width, height)) of smooth structure that moves, so frames differ."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(count):
        phase = 0.4 * i + seed
        img = np.stack([127 + 120 * np.sin(xx / 9 + phase), 127 + 120 * np.cos(yy / 7 - phase),
                        127 + 120 * np.sin((xx + yy) / 13 + 2 * phase)], -1)
        out.append(img.clip(0, 255).astype(np.uint8))
    return out


def write_video(path, images, fourcc: str = "mp4v", fps: float = 10.0) -> None:
    import cv2

    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for img in images:
        writer.write(img)
    writer.release()


def read_video(path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    images = []
    while True:
        ok, img = cap.read()
        if not ok:
            return images
        images.append(img)
