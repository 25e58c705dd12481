"""The files the device-side suite runs on, written on the workstation (torch) by tdm-edge's own exporter.

``python -m tests.device.fixtures DIR`` writes into DIR: ``pruned.onnx`` (a tiny BAT 0.7 ViT: 32 px, 4 px
patches, 65 -> 46 -> 33 -> 24 tokens, 10 labels), ``unpruned.onnx`` (the same weights, no reduction), their
sidecars and ``clip.mp4`` (12 frames, 96x64). ``make test`` runs it with .venv, then the device suite with the
Python 3.8 venv, which has no torch, pointed at DIR by ``TDM_DEVICE_FIXTURES``.
"""

from __future__ import annotations

import sys
from pathlib import Path

LABELS = [f"thing {i}" for i in range(10)]
FILES = ("pruned.onnx", "unpruned.onnx", "clip.mp4")


def make_fixtures(folder) -> Path:
    """Write the fixture files into ``folder`` (created) and return it."""
    import cv2

    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.reduce.patch import patch_vit

    from ..conftest import tiny_vit
    from ..video.conftest import frames

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(patch_vit(tiny_vit(), "bat", 0.7), folder / "pruned.onnx", labels=LABELS, name="tiny_bat",
                verify=False)
    export_onnx(tiny_vit(), folder / "unpruned.onnx", labels=LABELS, name="tiny", verify=False)
    images = frames(12, (96, 64))
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for image in images:
        writer.write(image)
    writer.release()
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.device.fixtures DIR")
    print(make_fixtures(sys.argv[1]))
