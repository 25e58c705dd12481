"""What the TensorRT ONNX parser (onnx-tensorrt) of each TensorRT release imports: plain data, no onnx import.

``check.py`` and ``trt_rules.py`` lint against these tables; ``engine/`` shares :data:`TRT_VERSIONS`,
:func:`parse_target` and :func:`lint_target`. Sources, read for this table (keep the citations when editing; the
branch heads are those of github.com/onnx/onnx-tensorrt as mirrored on 2026-11-23):

- 8.5: branch ``8.5-GA`` (fdeeaca, "8.5.3 update"), ``docs/operators.md`` and ``builtin_op_importers.cpp``. NOT the
  tag ``release/8.5-GA`` (3b008c4, 8.5.1), whose table lacks Mod, OneHot and HardSwish (marked supported later on
  the branch) and whose importer lacks the Q/DQ zero-point type check.
- 8.6: branch ``8.6-GA`` (ee0b139), same files. 10.0: branch ``10.0-GA`` (73f629e), ``onnxOpImporters.cpp`` and
  ``importerUtils.cpp``. 10.1: branch ``10.1-GA`` (96e7811 = tag ``release/10.1-GA``), same files.
  On each of these branches the "Y" rows of operators.md are exactly the ONNX op types with a registered importer.
- Later 10.x: onnx-tensorrt ``docs/Changelog.md`` 10.1 ... 10.15 (:data:`ADDED_IN_10X`); 10.15's operators.md
  ("TensorRT 10.15 supports operators in the inclusive range of opset 9 to opset 24") was read for the previous
  version of this table but no later importer source was at hand: the input rules of 10.1 are assumed to hold on.
- 11: the 10.15 table plus ``Swish`` (TensorRT 11.0 release notes, github.com/NVIDIA/TensorRT/releases/tag/v11.0,
  "Parsers: Added support for Swish operator"); opset ceiling 25 from NVIDIA's "ONNX Opset Guide" for 11.x.
- ``ModelImporter.cpp`` (all branches): the importer is picked by ``node.op_type()`` alone, the domain is never
  read; an op type with no importer (and, from 10.0, no local function of that name) goes to
  ``FallbackPluginImporter``, which looks up a plugin named after the op type (attributes ``plugin_version``,
  default "1", and ``plugin_namespace``, default "").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Tuple

Release = Tuple[int, int]  # (major, minor); typing's Tuple: this line runs, and the lint runs on Python 3.8

LATEST_10X_MINOR = 15  # the newest 10.x release whose parser changes are recorded below
TRT_VERSIONS = ("8.5", "8.6", "10", "11")  # the families shown in --help; "10.N" (N = 0..15) is accepted too
TRT_TARGETS = (*TRT_VERSIONS[:2], *(f"10.{m}" for m in range(LATEST_10X_MINOR + 1)), *TRT_VERSIONS[2:])


@dataclass(frozen=True)
class Target:
    """The TensorRT releases a model must parse on: "10" is every 10.x (10.0 ... 10.15), "10.3" only 10.3."""

    name: str
    first: Release
    last: Release

    def within(self, since: Release | None = None, until: Release | None = None) -> bool:
        """Whether some release of this target lies in ``[since, until]`` (None = open end)."""
        return (since is None or self.last >= since) and (until is None or self.first <= until)

    @property
    def trt8(self) -> bool:
        return self.first[0] == 8


def parse_target(name: str) -> Target:
    """``"8.5"``, ``"8.6"``, ``"10"`` (every 10.x), ``"10.0"`` ... ``"10.15"``, ``"11"``; ValueError otherwise."""
    if name not in TRT_TARGETS:
        raise ValueError(f"unknown TensorRT version {name!r}; choose one of {', '.join(TRT_VERSIONS)} "
                         f"or 10.0 ... 10.{LATEST_10X_MINOR}")
    if name == "10":
        return Target(name, (10, 0), (10, LATEST_10X_MINOR))
    major, _, minor = name.partition(".")
    release = (int(major), int(minor or 0))
    return Target(name, release, release)


def lint_target(version: str) -> str:
    """The lint target for an installed TensorRT (``tensorrt.__version__``, e.g. "10.3.0.26" -> "10.3").

    A 10.x newer than the tables maps to the newest known 10.x. Raises ValueError for a release we have no table for.
    """
    parts = version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"not a TensorRT version: {version!r}") from None
    if major == 10:
        return f"10.{min(minor, LATEST_10X_MINOR)}"
    if major == 11:
        return "11"
    if major == 8 and minor in (5, 6):
        return f"8.{minor}"
    raise ValueError(f"TensorRT {version}: no parser table (supported: 8.5, 8.6, 10.x, 11.x)")


# --- operators with an importer ----------------------------------------------------------------------------------

# TensorRT 8.5: 8.5-GA docs/operators.md, "TensorRT 8.5 supports operators up to Opset 17".
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

# TensorRT 8.6: 8.6-GA docs/operators.md (up to opset 17) = 8.5 plus these three (Changelog 8.6 EA).
_TRT86 = _TRT85 | {"GroupNormalization", "IsInf", "LayerNormalization"}

# TensorRT 10.0: 10.0-GA docs/operators.md, "opset 9 to opset 20" = 8.6 plus these four.
_TRT100 = _TRT86 | {"CastLike", "Gelu", "Hardmax", "Mish"}

# Operators a later 10.x parser added (onnx-tensorrt Changelog.md 10.1 ... 10.15); absent from the 10.0 table.
ADDED_IN_10X: dict[str, Release] = {
    "DeformConv": (10, 1), "BlackmanWindow": (10, 4), "HammingWindow": (10, 4), "HannWindow": (10, 4),
    "STFT": (10, 5), "Attention": (10, 14), "RMSNormalization": (10, 15), "RotaryEmbedding": (10, 15),
    "TensorScatter": (10, 15),
}

# TensorRT 11: the 10.15 table plus Swish (TensorRT 11.0 release notes).
_TRT11 = _TRT100 | set(ADDED_IN_10X) | {"Swish"}

# Importers registered under TensorRT's own op names (DEFINE_BUILTIN_OP_IMPORTER(TRT_...) on each branch): a node
# with one of these op types is imported, never looked up as a plugin.
_TRT_NAMES85 = frozenset("""TRT_AveragePool TRT_Conv TRT_Deconv TRT_FloorDiv TRT_FullyConnected TRT_Gather
TRT_MatMul TRT_MaxAverageBlendPool TRT_MaxPool TRT_PluginV2 TRT_RNNv2 TRT_RaggedSoftmax TRT_Resize TRT_Scale
TRT_Shuffle TRT_Slice TRT_TopK_Min""".split())
_TRT_NAMES86 = _TRT_NAMES85 | {"TRT_FP8DequantizeLinear", "TRT_FP8QuantizeLinear"}
_TRT_NAMES10 = (_TRT_NAMES86 - {"TRT_FullyConnected", "TRT_RNNv2"}) | {"TRT_INT4DequantizeLinear",
                                                                        "TRT_INT4QuantizeLinear"}


def supported_ops(release: Release) -> frozenset[str]:
    """The ONNX op types the parser of ``release`` imports (its operators.md "Y" rows)."""
    if release[0] == 8:
        return _TRT85 if release[1] == 5 else frozenset(_TRT86)
    if release[0] == 10:
        return frozenset(_TRT100 | {op for op, since in ADDED_IN_10X.items() if since <= release})
    return frozenset(_TRT11)


def trt_named_ops(release: Release) -> frozenset[str]:
    """TensorRT-private op types (``TRT_*``) with an importer in ``release``."""
    return _TRT_NAMES85 if release == (8, 5) else _TRT_NAMES86 if release[0] == 8 else _TRT_NAMES10




def opset_range(release: Release) -> tuple[int | None, int]:
    """Inclusive (min, max) default-domain opset the parser of ``release`` documents; None = no documented minimum.

    8.x: "up to Opset 17"; 10.0/10.1: "opset 9 to opset 20"; 10.15: "opset 9 to opset 24" (operators.md); the 10.x
    between them are taken as 20 (not documented to us); 11.x: 25 (NVIDIA ONNX opset guide).
    """
    if release[0] == 8:
        return None, 17
    if release[0] == 10:
        return 9, 24 if release[1] >= 15 else 20
    return 9, 25


# Ops whose output shape depends on the input values: never allowed (METHOD.md), whatever the parser accepts.
DATA_DEPENDENT_OPS = frozenset({"NonZero", "Unique", "NonMaxSuppression", "Compress"})

# --- input types -------------------------------------------------------------------------------------------------

# ONNX TensorProto data type -> the TensorRT type name the importers compare against (TensorOrWeights::getType).
ONNX_TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "HALF", 11: "DOUBLE",
                   16: "BF16"}


def importer_type(onnx_type: int, release: Release) -> str:
    """The type name an importer of ``release`` sees for an ONNX tensor type ("" if unknown).

    TensorRT 8 has no INT64: the 8.x parser imports INT64 inputs and initializers as INT32 (8.x TensorOrWeights
    getType maps INT64 weights to "INT32"); DOUBLE initializers are demoted to FLOAT in every release.
    """
    name = ONNX_TYPE_NAMES.get(onnx_type, "")
    if name == "INT64" and release[0] == 8:
        return "INT32"
    return "FLOAT" if name == "DOUBLE" else name


class TypeRule(NamedTuple):
    """Input types an importer rejects: ``notInvalidType(inputs.at(i), {...})`` or an equivalent assertion."""

    ops: frozenset[str]
    inputs: tuple[int, ...] | None  # input indices checked; None = every input
    invalid: frozenset[str]  # importer type names (see importer_type)
    since: Release | None  # first release with this check (None = all we have)
    until: Release | None  # last release with this check (None = still there)
    source: str


def _rule(ops: str, inputs, invalid: str, since=None, until=None, source: str = "") -> TypeRule:
    return TypeRule(frozenset(ops.split()), inputs, frozenset(invalid.split()), since, until, source)


_ACTIVATIONS = ("Elu HardSigmoid LeakyRelu ParametricSoftplus Relu ScaledTanh Selu Sigmoid Softplus Softsign Tanh "
                "ThresholdedRelu Gelu Mish")
_UINT8_0 = "Clip Concat Einsum Expand EyeLike Gather GatherElements GatherND Mod Pad ReverseSequence Slice Split Tile Trilu"
INPUT_TYPE_RULES: tuple[TypeRule, ...] = (
    # activationHelper (onnx2trt_utils.cpp 8.x, importerUtils.cpp 10.x): every op imported as an IActivationLayer.
    # INT64 is not in the list from 10.0 (10.0 operators.md documents Relu on INT32/INT64, but the importer
    # rejects INT32 on every branch).
    _rule(_ACTIVATIONS, (0,), "INT32 BOOL UINT8", source="activationHelper"),
    _rule("HardSwish", (0,), "INT32 INT64 BOOL UINT8 BF16", source="HardSwish importer: FLOAT, HALF or INT8 only"),
    # argMinMaxHelper and TopK: 8.5 rejects INT32 (and so INT64); 8.6 (branch and tag) casts INT32 to FLOAT.
    _rule("ArgMax ArgMin", (0,), "INT32 UINT8", until=(8, 5), source="argMinMaxHelper"),
    _rule("ArgMax ArgMin", (0,), "UINT8", since=(8, 6), source="argMinMaxHelper"),
    _rule("TopK", (0,), "INT32 UINT8", until=(8, 5), source="TopK importer"),
    _rule("TopK", (0,), "UINT8", since=(8, 6), source="TopK importer (8.6 casts INT32 to FLOAT)"),
    _rule("MatMul Gemm", (0,), "INT32", until=(8, 6), source="MatMul/Gemm importers"),
    _rule("MatMul Gemm", (0,), "INT32 INT64", since=(10, 0), source="MatMul/Gemm importers"),
    _rule("PRelu", (0, 1), "INT32", until=(8, 6), source="PRelu importer"),
    _rule("PRelu", (0, 1), "INT32 INT64", since=(10, 0), source="PRelu importer"),
    # elementwiseCheck, kPOW: "Pow does not support bool or INT32 types" (8.x), "... integer types" (10.x).
    _rule("Pow", None, "BOOL INT32", until=(8, 6), source="elementwiseCheck (kPOW)"),
    _rule("Pow", None, "BOOL INT32 INT64", since=(10, 0), source="elementwiseCheck (kPOW)"),
    _rule("Hardmax", (0,), "INT64 INT32 INT8 UINT8 BOOL", since=(10, 0), source="Hardmax importer"),
    _rule(_UINT8_0, (0,), "UINT8", source="importer notInvalidType"),
    _rule("OneHot", (0, 1, 2), "UINT8", source="OneHot importer"),
    _rule("Where", (1, 2), "UINT8", source="Where importer"),
    _rule("QuantizeLinear DequantizeLinear", (0,), "UINT8", source="QuantDequantLinearHelper"),
    _rule("QuantizeLinear", (2,), "UINT8", source="QuantDequantLinearHelper: a UINT8 zero point"),
    _rule("DepthToSpace SpaceToDepth Resize Upsample", (0,), "BOOL UINT8", source="importer notInvalidType"),
    _rule("GridSample", (0, 1), "BOOL UINT8", source="GridSample importer"),
)

# --- TopK, scatter -----------------------------------------------------------------------------------------------

# ITopKLayer::setK (NvInfer.h, TensorRT 8.5 ... 10; the Python API says the same): "Currently only values up to
# 3840 are supported", i.e. K <= 3840. (10.1-GA operators.md writes "less than 3840"; we follow the API.)
TOPK_MAX_K = 3840
# "`sorted` must be 1": TopK row of operators.md from 10.1-GA on (absent from 10.0-GA; the 10.1-GA importer itself
# does not read `sorted`, so this is the documented restriction).
TOPK_SORTED_SINCE: Release = (10, 1)

# ``reduction`` attributes a parser ignores or rejects. 8.x: both scatter importers drop ``reduction`` silently
# (the layer then overwrites instead of accumulating). 10.0+: ScatterND rejects it ("`reduction` is not
# supported"), ScatterElements honours it through the ScatterElements plugin (Changelog 10.0 EA).
SCATTER_REDUCTION_SILENT_UNTIL: Release = (8, 6)
SCATTER_REDUCTION_REJECTED = frozenset({"ScatterND"})

# --- inputs that must be constant --------------------------------------------------------------------------------

# op -> (input index, input name, first default-domain opset where it is an input rather than an attribute).
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
# Of those, the ones whose importer reads the value out of an initializer or a Constant node (the only inputs the
# parser holds as weights; it folds nothing): value -> last release with that check, None = every release we have.
# 8.5-GA ... 10.1-GA alike: Squeeze and CumSum call assertIsWeights, reduceTensor asserts "Axis input must be an
# initializer!", Unsqueeze and Slice require ShapeTensor::allValuesKnown() (only weights have known values), Pad
# asserts "TensorRT does not support dynamic axes for pad!" for a non-weights axes; TopK's K only up to 8.5
# (8.6 feeds K to ITopKLayer::setInput). The builder would fold a Cast/Concat of constants, but the importer
# checks first: constant-fold the model (polygraphy surgeon sanitize --fold-constants) before parsing.
WEIGHTS_ONLY_UNTIL: dict[str, Release | None] = {
    "TopK": (8, 5), "Squeeze": None, "Unsqueeze": None, "Slice": None, "Pad": None, "CumSum": None,
    **{op: None for op in (*_REDUCE13, *_REDUCE18)},
}
# 8.5-GA and 8.6-GA Pad: any ``axes`` input is refused ("TensorRT does not support dynamic axes for pad!").
PAD_AXES_UNSUPPORTED_UNTIL: Release = (8, 6)
