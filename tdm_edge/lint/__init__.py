"""The TensorRT ONNX-parser lint (``tdm-edge check``): device side, needs onnx and numpy, never torch.

  check.py        the driver: ``check_model`` / ``check_file``, ``Finding``, the rule hook
  trt_rules.py    the built-in rules, ``rule(info, node, trt) -> Iterable[Finding]``
  check_qdq.py    TensorRT's explicit-quantization (Q/DQ) rules
  plugin_check.py our ``TdmBatMerge`` plugin node: attributes and sizes
  model_info.py   what a rule knows: tensor types, shapes, constant values, weights
  trt_ops.py      the parser's tables per TensorRT release and version parsing (plain data, shared with engine/)

``import tdm_edge.lint.trt_ops`` needs neither onnx nor numpy; the others import onnx.
"""
