"""FakeTensorRT: a stand-in for the ``tensorrt`` module, for testing control flow where TensorRT cannot run.

It records every call and property set the builder and runner make in ONE ordered log (``fake.calls``; ``fake.index``
and ``fake.before`` ask about the order across kinds) and, like the real bindings, lacks the names a version
lacks (its enums are built per version from :data:`ENUMS`, which the API conformance test checks against the real
wheels), so code that reaches ``BuilderFlag.FP16`` on 11.x fails here as it would there. What the real thing does
when misused, it does too: the builder config and the layers' precisions freeze at ``build_serialized_network``
(a change after it raises :class:`FakeMisuse`: on TensorRT it would silently not apply to the engine built),
``set_timing_cache`` returns False for a cache from another device (``cache_mismatch``), and 8.5.x's ``nptype``
fails as it does with numpy 1.24-1.26. Its method signatures are checked against the wheels' pybind docstrings.
It builds no engine and runs no inference: its "engine" is a byte string and its outputs are what the test says.
"""

from __future__ import annotations

import enum
import types

import numpy as np

# Members of the version-dependent enums, as in the real bindings (8.6.1, 10.3.0, 11.0.0.114), limited to what
# tdm-edge touches plus the names whose absence matters.
ENUMS = {
    "8": {"NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"],
          "BuilderFlag": ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "GPU_FALLBACK", "TF32"]},
    "10": {"NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH", "STRONGLY_TYPED"],
           "BuilderFlag": ["FP16", "INT8", "BF16", "OBEY_PRECISION_CONSTRAINTS", "GPU_FALLBACK", "TF32"]},
    "11": {"NetworkDefinitionCreationFlag": ["STRONGLY_TYPED"],
           "BuilderFlag": ["GPU_FALLBACK", "TF32"]},
}
COMMON_ENUMS = {
    "MemoryPoolType": ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM"],
    "LayerType": ["TOPK", "MATRIX_MULTIPLY", "SOFTMAX", "REDUCE", "ELEMENTWISE", "UNARY", "SHAPE"],
    "DeviceType": ["GPU", "DLA"],
    "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
    "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL"],
}
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_}


class FakeMisuse(AssertionError):
    """A call the real TensorRT would accept but not honour (a builder setting after the build), or reject."""


def _enum(name: str, members: list[str]) -> type[enum.IntEnum]:
    return enum.IntEnum(name, [(m, i) for i, m in enumerate(members)])


class FakeParserError:
    def __init__(self, node: int, desc: str) -> None:
        self._node, self._desc = node, desc

    def node(self) -> int:
        return self._node

    def desc(self) -> str:
        return self._desc


class FakeTensorRT(types.ModuleType):
    """``FakeTensorRT("10.3.0", layers=["TOPK"], parse_errors=[(3, "msg")], build_fails=False)``.

    Args:
        version: what ``__version__`` says; picks the enums' members.
        layers: the parsed network's layers: type names in ``LayerType``, or ``(type, layer name)`` pairs.
        parse_errors: ``(node index, description)`` pairs; non-empty makes ``parse_from_file`` fail.
        build_fails: ``build_serialized_network`` returns ``None`` and logs an error.
        dla_cores: what ``Builder.num_DLA_cores`` says.
        io: for the runner: ``[(name, "INPUT"|"OUTPUT", "FLOAT", shape)]`` of the deserialised engine.

    For the runner, set ``fake.cuda`` (a FakeCudart) and ``fake.compute(addresses)``: what the "engine" does with
    the device buffers bound by name; it runs on the fake CUDA stream, so CUDA-graph capture records it.
    """

    def __init__(self, version: str, *, layers=("MATRIX_MULTIPLY", "TOPK", "SOFTMAX", "TOPK"), parse_errors=(),
                 build_fails: bool = False, dla_cores: int = 0, io=(), log=(), cache_mismatch: bool = False) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple] = []
        major = version.split(".")[0]
        for name, members in {**ENUMS["8" if major == "8" else major], **COMMON_ENUMS}.items():
            setattr(self, name, _enum(name, members))
        self.float32 = self.DataType.FLOAT
        self.ILogger = self._ilogger()
        self.Logger = self._logger()
        self.layers, self.parse_errors, self.build_fails = list(layers), list(parse_errors), build_fails
        self.dla_cores, self.io = dla_cores, list(io)
        self.log_during_build = list(log)  # (severity name, message) the builder logs while building
        self.cache_mismatch = cache_mismatch
        self.frozen = False
        self.classes: dict[str, type] = {}  # the real class name -> the fake's class (checked against the wheels)
        self.Builder, self.OnnxParser, self.Runtime = self._builder(), self._parser(), self._runtime()

    # -- helpers the fake's classes share ------------------------------------------------------------------------
    def record(self, *call) -> None:
        self.calls.append(call)

    def names(self, kind: str) -> list:
        """The arguments of every recorded call named ``kind``, in order."""
        return [c[1:] for c in self.calls if c[0] == kind]

    def index(self, kind: str) -> int:
        """Position in the one call log of the first call named ``kind``."""
        return next(i for i, c in enumerate(self.calls) if c[0] == kind)

    def before(self, first: str, then: str) -> bool:
        """Whether every ``first`` call precedes the first ``then`` call."""
        last = max(i for i, c in enumerate(self.calls) if c[0] == first)
        return last < self.index(then)

    def configure(self, what: str, *args) -> None:
        """Record a builder setting; after ``build_serialized_network`` it is a :class:`FakeMisuse`."""
        if self.frozen:
            raise FakeMisuse(f"FakeTensorRT: {what} after build_serialized_network (the engine is already built)")
        self.record(what, *args)

    def init_libnvinfer_plugins(self, logger, namespace: str) -> bool:
        self.record("init_libnvinfer_plugins", namespace)
        return True

    def nptype(self, dtype):
        if self.__version__.startswith("8.5."):  # 8.5.1-8.5.2's nptype reads np.bool (gone in numpy 1.24-1.26)
            raise AttributeError("module 'numpy' has no attribute 'bool'")
        return _NP[dtype.name]

    # -- classes ---------------------------------------------------------------------------------------------------
    def _ilogger(self):
        severity = _enum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])

        class ILogger:
            Severity = severity

            def __init__(self) -> None:
                pass

        return ILogger

    def _logger(self):
        base = self.ILogger

        class Logger(base):
            WARNING = base.Severity.WARNING

            def __init__(self, min_severity) -> None:
                self.min_severity = min_severity

        return Logger

    def _builder(self):
        fake = self

        class Layer:
            __slots__ = ("type", "name", "_precision")  # like pybind: no attribute the real class lacks can be set

            def __init__(self, kind, name: str = "") -> None:
                self.type = kind
                self.name = name
                self._precision = None

        if fake.__version__.split(".")[0] != "11":  # 11.x has no per-layer precision (strongly typed)
            def _get(layer):
                return layer._precision

            def _set(layer, value) -> None:
                fake.configure("layer.precision", layer.type.name, value)
                layer._precision = value

            Layer.precision = property(_get, _set)

        class Network:
            def __init__(self, flags: int) -> None:
                self.flags = flags
                self.layers = [Layer(fake.LayerType[k]) if isinstance(k, str) else Layer(fake.LayerType[k[0]], k[1])
                               for k in fake.layers]  # "TOPK" or ("REDUCE", "/blocks.0/norm1/ReduceMean")
                self.num_layers = len(self.layers)

            def get_layer(self, index: int) -> Layer:
                return self.layers[index]

        class TimingCache:
            def __init__(self, data: bytes) -> None:
                self.data = data

            def serialize(self) -> bytes:
                return self.data + b"+timings"

        class Config:
            def __init__(self) -> None:
                self.cache = None
                self._device_type = fake.DeviceType.GPU
                self._dla_core = -1

            @property
            def default_device_type(self):
                return self._device_type

            @default_device_type.setter
            def default_device_type(self, value) -> None:
                fake.configure("config.default_device_type", value.name)
                self._device_type = value

            @property
            def DLA_core(self) -> int:  # noqa: N802 (TensorRT's name)
                return self._dla_core

            @DLA_core.setter
            def DLA_core(self, value: int) -> None:  # noqa: N802
                fake.configure("config.DLA_core", value)
                self._dla_core = value

            def set_flag(self, flag) -> None:
                fake.configure("set_flag", flag.name)

            def set_memory_pool_limit(self, pool, pool_size: int) -> None:
                fake.configure("set_memory_pool_limit", pool.name, pool_size)

            def create_timing_cache(self, serialized_timing_cache) -> TimingCache:
                fake.record("create_timing_cache", bytes(serialized_timing_cache))
                return TimingCache(bytes(serialized_timing_cache))

            def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
                fake.configure("set_timing_cache", cache.data)
                if fake.cache_mismatch and cache.data and not ignore_mismatch:
                    return False  # a cache from another device or TensorRT: refused, as the real one does
                self.cache = cache
                return True

            def get_timing_cache(self):
                fake.record("get_timing_cache")
                return self.cache

        class Builder:
            def __init__(self, logger) -> None:
                self.logger = logger
                self.num_DLA_cores = fake.dla_cores

            def create_network(self, flags: int) -> Network:
                fake.record("create_network", flags)
                fake.network = Network(flags)
                return fake.network

            def create_builder_config(self) -> Config:
                fake.frozen = False  # a new config for a new build (the last one stays built)
                fake.config = Config()
                return fake.config

            def build_serialized_network(self, network, config):
                fake.record("build_serialized_network")
                fake.frozen = True
                for severity, message in fake.log_during_build:
                    self.logger.log(fake.ILogger.Severity[severity], message)
                if fake.build_fails:
                    self.logger.log(fake.ILogger.Severity.ERROR, "FakeTensorRT: no implementation for TopK")
                    return None
                return memoryview(b"FAKE-ENGINE " + fake.__version__.encode())

        fake.classes.update(Builder=Builder, INetworkDefinition=Network, ILayer=Layer, IBuilderConfig=Config,
                            ITimingCache=TimingCache)
        return Builder

    def _parser(self):
        fake = self

        class OnnxParser:
            def __init__(self, network, logger) -> None:
                self.errors = [FakeParserError(n, d) for n, d in fake.parse_errors]
                self.num_errors = 0

            def parse_from_file(self, model: str) -> bool:
                fake.record("parse_from_file", model)
                self.num_errors = len(self.errors)
                return not self.errors

            def get_error(self, index: int) -> FakeParserError:
                return self.errors[index]

        fake.classes.update(OnnxParser=OnnxParser, ParserError=FakeParserError)
        return OnnxParser

    def _runtime(self):
        fake = self

        class Context:
            def __init__(self) -> None:
                self.addresses: dict[str, int] = {}

            def set_input_shape(self, name: str, shape) -> bool:
                fake.record("set_input_shape", name, tuple(shape))
                return True

            def set_tensor_address(self, name: str, memory: int) -> bool:
                fake.record("set_tensor_address", name)
                self.addresses[name] = memory
                return True

            def execute_async_v3(self, stream_handle: int) -> bool:
                fake.record("execute_async_v3")
                fake.cuda.enqueue(stream_handle, lambda: fake.compute(self.addresses))
                return True

        class Engine:
            num_io_tensors = len(fake.io)

            def get_tensor_name(self, index: int) -> str:
                return fake.io[index][0]

            def get_tensor_mode(self, name: str):
                return fake.TensorIOMode[self._io(name)[1]]

            def get_tensor_dtype(self, name: str):
                return fake.DataType[self._io(name)[2]]

            def get_tensor_shape(self, name: str):
                return tuple(self._io(name)[3])

            def create_execution_context(self) -> Context:
                fake.record("create_execution_context")
                fake.context = Context()
                return fake.context

            def _io(self, name: str):
                return next(t for t in fake.io if t[0] == name)

        class Runtime:
            def __init__(self, logger) -> None:
                self._dla_core = -1

            @property
            def DLA_core(self) -> int:  # noqa: N802 (TensorRT's name)
                return self._dla_core

            @DLA_core.setter
            def DLA_core(self, value: int) -> None:  # noqa: N802
                fake.record("runtime.DLA_core", value)
                self._dla_core = value

            def deserialize_cuda_engine(self, serialized_engine: bytes):
                data = bytes(serialized_engine)
                fake.record("deserialize_cuda_engine", data)
                fake.engine_dla_core = self._dla_core  # the core the engine will run on
                return Engine() if bytes(data).startswith(b"FAKE-ENGINE") else None

        fake.classes.update(Runtime=Runtime, ICudaEngine=Engine, IExecutionContext=Context)
        return Runtime
