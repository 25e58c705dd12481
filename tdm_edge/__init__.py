"""tdm-edge: token-pruned Vision Transformers from timm to ONNX, TensorRT and a camera loop.

One sub-package per pipeline stage; data flows down the list, a stage imports only the ones above it:
  reduce/      token reduction on a timm ViT (BAT, EViT, ToMe, random), GMAC counting
  export/      ONNX export with static token counts, verification, TensorRT parser lint
  runners/     one Runner interface for PyTorch, ONNX Runtime (and TensorRT)
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
