"""Stage 2, ONNX export (workstation side: torch): static token counts, verification against PyTorch.

  onnx_export.py  ``export_onnx``: trace, clean up, describe (metadata + sidecar), verify, write atomically
  layer_norm.py   LayerNorm exported decomposed (TensorRT 8.5) or native
  fp16.py         --precision fp16: fp16 copy, fp32 edges, LayerNorms and token selection in fp32 by Casts
  verify.py       ONNX Runtime against PyTorch, token selections included
  plugin_graph.py BAT stages as one TdmBatMerge plugin node each
  selections.py   the token selections as extra graph outputs

The TensorRT parser lint is its own stage, :mod:`tdm_edge.lint`; reading an export's metadata is
:mod:`tdm_edge.metadata` (device side, no torch). Names are loaded on first use.
"""

from importlib import import_module

_NAMES = {
    "export_onnx": "onnx_export", "read_metadata": "onnx_export", "VerificationError": "onnx_export",
    "METADATA_KEY": "onnx_export",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
