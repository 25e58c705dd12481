"""tdm-edge: token-pruned Vision Transformers from timm to ONNX, TensorRT and a camera loop.

Two sides (tdm_edge/sides.py, held by tests/test_device_side.py): the device side (build, run and bench of .onnx and
.engine files, check, doctor: engine/, runners/ but the PyTorch ones, video/, lint/, metadata.py) runs on Python 3.8+
without torch; the workstation side (reduce/, export/, quantize/, train/) needs torch, timm and Python 3.10+.

One sub-package per pipeline stage; data flows down the list, a stage imports only the ones above it:
  reduce/      token reduction on a timm ViT (BAT, EViT, ToMe, random), GMAC counting
  export/      ONNX export with static token counts, verification, TensorRT parser lint
  runners/     one Runner interface for PyTorch, ONNX Runtime (and TensorRT)
  metadata.py  an export's metadata, read from the .onnx without onnx or torch (or an engine's sidecar)
  checkpoint.py offline weight loading (.pth/.pt/.safetensors), one-line errors for what is not a checkpoint
  provenance.py where a model's weights came from; the warning for random ones
  limits.py    the limits of every setting, checkable before torch is imported
  outputs.py   output paths checked up front, files written together or not at all, umask permissions
  cli.py       the `tdm-edge` command (parses and dispatches only), demo.py `make demo`

``from tdm_edge import create_model, patch_vit`` works too (loaded on first use, so the command line starts fast).
"""

__version__ = "0.1.0"

_LAZY = {"create_model": "tdm_edge.reduce", "patch_vit": "tdm_edge.reduce"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tdm_edge' has no attribute {name!r}")
