"""Stage 2, ONNX export: static token counts, verification against PyTorch, the TensorRT parser lint.

  onnx_export.py  ``export_onnx``: trace, clean up, describe (metadata + sidecar), verify, write atomically
  verify.py       ONNX Runtime against PyTorch, token selections included
  check.py        TensorRT ONNX-parser linter (``tdm-edge check``): driver, Finding, the rule hook
  trt_rules.py    the built-in lint rules, ``rule(info, node, trt) -> Iterable[Finding]``
  model_info.py   what a rule knows: tensor types, shapes, constant values, weights
  trt_ops.py      the parser's tables per TensorRT release and version parsing (plain data, shared with engine/)

Names are loaded on first use, so ``import tdm_edge.export.trt_ops`` needs neither torch nor onnx.
"""

from importlib import import_module

_NAMES = {
    "export_onnx": "onnx_export", "read_metadata": "onnx_export", "VerificationError": "onnx_export",
    "METADATA_KEY": "onnx_export", "check_file": "check", "check_model": "check",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
