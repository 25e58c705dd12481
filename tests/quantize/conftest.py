"""A tiny ViT trained in seconds on drawn shapes, exported with BAT, written as image folders: a model whose
FP32-vs-INT8 agreement means something (random weights give near-tied logits and token scores)."""

import os

import numpy as np
import pytest
import torch

from ..conftest import tiny_vit

CLASSES = ["red", "green", "blue", "yellow"]  # the colour of the shape; circle or square at random
_BGR = {"red": (40, 40, 220), "green": (40, 200, 40), "blue": (220, 60, 40), "yellow": (40, 210, 220)}


def draw_shapes(count: int, seed: int, size: int = 40) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` BGR images of one coloured shape on a noisy background, and their class indices."""
    import cv2

    rng = np.random.default_rng(seed)
    frames, labels = [], rng.integers(0, len(CLASSES), count)
    for label in labels:
        colour, shape = CLASSES[label], ("circle", "square")[int(rng.integers(2))]
        img = rng.integers(60, 120, (size, size, 3)).astype(np.uint8)  # [S, S, 3] noise
        for _ in range(8):  # grey clutter: background tokens that differ from each other, as in real scenes
            x0, y0 = (int(v) for v in rng.integers(0, size - 4, 2))
            w, h = (int(v) for v in rng.integers(3, 12, 2))
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (int(rng.integers(0, 256)),) * 3, -1)
        r = int(rng.integers(7, 12))
        cx, cy = (int(v) for v in rng.integers(r + 4, size - r - 4, 2))
        bgr = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in _BGR[colour])
        if shape == "circle":
            cv2.circle(img, (cx, cy), r, bgr, -1)
        else:
            cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), bgr, -1)
        frames.append(img)
    return frames, labels


def train_tiny(prep: dict, epochs: int = 8) -> torch.nn.Module:
    """A BAT-patched tiny ViT trained on :func:`draw_shapes` (AdamW, a few epochs on one CPU thread: the
    machine's other threads are busy with other tests, and a tiny model gains nothing from a second one)."""
    from tdm_edge.reduce.patch import patch_vit
    from tdm_edge.runners.preprocess import preprocess

    model = patch_vit(tiny_vit(num_classes=len(CLASSES)), "bat", 0.7)
    frames, labels = draw_shapes(320, seed=1)
    x, y = torch.from_numpy(preprocess(frames, prep)), torch.from_numpy(labels)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.train()
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=gen).split(32):
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """``{"fp32": path, "calib": dir, "held_out": dir, "held_out_labels": array, "accuracy": float}``."""
    import cv2

    from tdm_edge.export.onnx_export import build_metadata, export_onnx
    from tdm_edge.runners.preprocess import preprocess

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("int8")
    prep = build_metadata(tiny_vit(num_classes=len(CLASSES)), name="tiny", batch=4, opset=17)["preprocessing"]
    model = train_tiny(prep)
    fp32 = root / "tiny_bat.onnx"
    export_onnx(model, fp32, batch=4, name="tiny_vit")
    dirs = {}
    for name, count, seed in (("calib", 64, 2), ("held_out", 200, 3)):
        frames, labels = draw_shapes(count, seed)
        dirs[name] = root / name
        dirs[name].mkdir()
        for i, frame in enumerate(frames):
            cv2.imwrite(os.fspath(dirs[name] / f"{i:04d}.png"), frame)
        dirs[f"{name}_labels"] = labels
    frames, labels = draw_shapes(200, 3)
    with torch.inference_mode():
        accuracy = float((model(torch.from_numpy(preprocess(frames, prep))).argmax(1).numpy() == labels).mean())
    return {"fp32": fp32, "root": root, **dirs, "accuracy": accuracy}
