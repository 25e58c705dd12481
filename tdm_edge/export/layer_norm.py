"""How ``aten::layer_norm`` leaves PyTorch: decomposed for TensorRT 8.5's parser, or native LayerNormalization."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def decomposed_layer_norm(opset: int):
    """Export ``aten::layer_norm`` as ReduceMean/Sub/Pow/Sqrt/Div (opset 9's form) instead of LayerNormalization.

    TensorRT 8.5's ONNX parser has no LayerNormalization; 8.6+ and ONNX Runtime fuse the pattern back.
    """
    from torch.onnx import register_custom_op_symbolic, symbolic_opset9, unregister_custom_op_symbolic

    register_custom_op_symbolic("aten::layer_norm", symbolic_opset9.layer_norm, opset)
    try:
        yield
    finally:
        unregister_custom_op_symbolic("aten::layer_norm", opset)
