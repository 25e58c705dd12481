"""One runner interface for every backend: ``with Runner(...) as r: outputs = r.infer(feed)``.

  base.py        the interface (after Polygraphy's BaseRunner): activate/deactivate, checked feeds, timing
  pytorch.py     ``PyTorchRunner``: a torch module
  onnxrt.py      ``OnnxRuntimeRunner``: an ONNX file in ONNX Runtime
  preprocess.py  frames -> the model's input tensor, from the model's own metadata
  selections.py  the token selections as extra outputs of an ONNX graph (onnx only), for run --show-tokens
  tensorrt.py    ``TensorRTRunner``: a TensorRT engine (with its CUDA binding)

Names are loaded on first use, so ``tdm_edge.runners.base`` or ``.preprocess`` import neither torch nor ONNX Runtime.
"""

from importlib import import_module

_NAMES = {"FeedError": "base", "Runner": "base", "RunnerError": "base", "TensorMeta": "base", "check_feed": "base",
          "OnnxRuntimeRunner": "onnxrt", "PyTorchRunner": "pytorch", "vit_input_metadata": "pytorch"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
