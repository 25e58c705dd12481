"""What the TensorRT ONNX parser (onnx-tensorrt) of each TensorRT version imports: the data behind ``check.py``.

Sources, read for this table (keep the citations when editing):

- 8.5, 8.6, 10: the "Y" rows of ``docs/operators.md`` in github.com/onnx/onnx-tensorrt at the release branches
  ``release/8.5-GA``, ``release/8.6-GA`` and ``release/10.0-GA``. "10" means every 10.x, so it is the 10.0 table:
  operators added later in 10.x are listed in :data:`ADDED_IN_10X` and reported with the release that added them.
- 11: the 10.15 ``docs/operators.md`` (onnx-tensorrt main, "TensorRT 10.15 supports operators in the inclusive
  range of opset 9 to opset 24"), plus ``Swish`` from the TensorRT 11.0 release notes (github.com/NVIDIA/TensorRT
  releases/tag/v11.0, "Parsers: Added support for Swish operator"). No 11.x ``operators.md`` was at hand, so the
  11 set is the newest published table plus the documented 11.0 addition. The opset ceiling 25 is from NVIDIA's
  "ONNX Opset Guide" for TensorRT 11.x (docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide).
- Behaviour changes between versions: onnx-tensorrt ``docs/Changelog.md`` (8.6 EA: LayerNormalization,
  GroupNormalization, IsInf, TopK with dynamic K; 10.0 EA: the ``reduction`` attribute of ScatterElements) and the
  importers themselves (8.5 ``builtin_op_importers.cpp``: TopK asserts that K is an initializer, ScatterElements and
  ScatterND build a plain scatter layer without reading ``reduction``; 10.x ``onnxOpImporters.cpp``: ScatterND
  rejects ``reduction``, ScatterElements with a reduction goes to the ScatterElements plugin).
"""

from __future__ import annotations

TRT_VERSIONS = ("8.5", "8.6", "10", "11")  # "10" is any 10.x (checked against 10.0), "11" any 11.x

# TensorRT 8.5: onnx-tensorrt release/8.5-GA docs/operators.md, "TensorRT 8.5 supports operators up to Opset 17".
_TRT85 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip Concat
Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum Elu
Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GridSample HardSigmoid HardSwish Identity If ImageScaler InstanceNormalization
IsNaN LRN LSTM LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad ParametricSoftplus Pow
QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
ReverseSequence RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin
Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# TensorRT 8.6: release/8.6-GA docs/operators.md (up to opset 17) = 8.5 plus these three (Changelog 8.6 EA).
_TRT86 = _TRT85 | {"GroupNormalization", "IsInf", "LayerNormalization"}

# TensorRT 10.0: release/10.0-GA docs/operators.md, "opset 9 to opset 20" = 8.6 plus these four.
_TRT10 = _TRT86 | {"CastLike", "Gelu", "Hardmax", "Mish"}

# Operators a later 10.x parser added (onnx-tensorrt Changelog.md 10.1 ... 10.15); absent from the 10.0 table.
ADDED_IN_10X = {
    "DeformConv": "10.1", "BlackmanWindow": "10.4", "HammingWindow": "10.4", "HannWindow": "10.4", "STFT": "10.5",
    "Attention": "10.14", "RMSNormalization": "10.15", "RotaryEmbedding": "10.15", "TensorScatter": "10.15",
}

# TensorRT 11: the 10.15 table (10.0 plus everything above) plus Swish (TensorRT 11.0 release notes).
_TRT11 = _TRT10 | set(ADDED_IN_10X) | {"Swish"}

SUPPORTED_OPS: dict[str, frozenset[str]] = {
    "8.5": _TRT85, "8.6": frozenset(_TRT86), "10": frozenset(_TRT10), "11": frozenset(_TRT11),
}

# Inclusive (min, max) default-domain opset each parser documents; None = no documented minimum.
OPSET_RANGE: dict[str, tuple[int | None, int]] = {"8.5": (None, 17), "8.6": (None, 17), "10": (9, 20), "11": (9, 25)}

# Ops whose output shape depends on the input values: never allowed (METHOD.md), whatever the parser accepts.
DATA_DEPENDENT_OPS = frozenset({"NonZero", "Unique", "NonMaxSuppression", "Compress"})

# TopK: "K input must be less than 3840" (operators.md 10.0 and 10.15); ITopKLayer::setK in the TensorRT 8.5-11
# API reference says "Currently only values up to 3840 are supported". We take the stricter, parser-side bound.
TOPK_MAX_K_EXCLUSIVE = 3840

# TopK input types per operators.md: 8.5 FP32/FP16 (the importer rejects INT32 and UINT8); 8.6 adds INT32;
# 10.0 and later FP32, FP16, BF16, INT32, INT64. Values are onnx.TensorProto data type numbers.
_F32, _F16, _BF16, _I32, _I64 = 1, 10, 16, 6, 7
TOPK_TYPES: dict[str, frozenset[int]] = {
    "8.5": frozenset({_F32, _F16}), "8.6": frozenset({_F32, _F16, _I32}),
    "10": frozenset({_F32, _F16, _BF16, _I32, _I64}), "11": frozenset({_F32, _F16, _BF16, _I32, _I64}),
}

# Reduction attributes a parser ignores or rejects. 8.x: both scatter importers drop ``reduction`` silently
# (the layer then overwrites instead of accumulating). 10.0+: ScatterND rejects it ("`reduction` is not
# supported"), ScatterElements honours it through the ScatterElements plugin (Changelog 10.0 EA).
SCATTER_REDUCTION_UNSUPPORTED: dict[str, frozenset[str]] = {
    "8.5": frozenset({"ScatterElements", "ScatterND"}), "8.6": frozenset({"ScatterElements", "ScatterND"}),
    "10": frozenset({"ScatterND"}), "11": frozenset({"ScatterND"}),
}

# Inputs that must be build-time constants: op -> (input index, input name, first default-domain opset where it is
# an input rather than an attribute). From the "must be an initializer / a build-time constant" restrictions in
# operators.md (TopK K, OneHot depth, CumSum axis, Slice/Squeeze/Unsqueeze/Reduce*/Pad axes) and METHOD.md
# ("ReduceMin/ArgMin with constant axes"); required for every version here.
_REDUCE13 = ("ReduceSum",)
_REDUCE18 = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
             "ReduceProd", "ReduceSumSquare")
CONSTANT_INPUTS: dict[str, tuple[int, str, int]] = {
    "TopK": (1, "K", 10),
    "OneHot": (1, "depth", 9),
    "CumSum": (1, "axis", 11),
    "Slice": (3, "axes", 10),
    "Squeeze": (1, "axes", 13),
    "Unsqueeze": (1, "axes", 13),
    "Pad": (3, "axes", 18),
    **{op: (1, "axes", 13) for op in _REDUCE13},
    **{op: (1, "axes", 18) for op in _REDUCE18},
}
