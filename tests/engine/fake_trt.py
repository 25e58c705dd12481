"""FakeTensorRT: a stand-in for the ``tensorrt`` module, for testing control flow where TensorRT cannot run.

It records every call the builder and runner make (``fake.calls``) and, like the real bindings, lacks the names a
version lacks (its enums are built per version from :data:`ENUMS`, which the API conformance test checks against
the real wheels), so code that reaches ``BuilderFlag.FP16`` on 11.x fails here as it would there. It builds no
engine and runs no inference: its "engine" is a byte string and its outputs are what the test tells it.
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
    "MemoryPoolType": ["WORKSPACE", "DLA_MANAGED_SRAM"],
    "LayerType": ["TOPK", "MATRIX_MULTIPLY", "SOFTMAX"],
    "DeviceType": ["GPU", "DLA"],
    "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
    "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL"],
}
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_}


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
        layers: the parsed network's layer types (names in ``LayerType``).
        parse_errors: ``(node index, description)`` pairs; non-empty makes ``parse_from_file`` fail.
        build_fails: ``build_serialized_network`` returns ``None`` and logs an error.
        dla_cores: what ``Builder.num_DLA_cores`` says.
        io: for the runner: ``[(name, "INPUT"|"OUTPUT", "FLOAT", shape)]`` of the deserialised engine.

    For the runner, set ``fake.cuda`` (a FakeCudart) and ``fake.compute(addresses)``: what the "engine" does with
    the device buffers bound by name; it runs on the fake CUDA stream, so CUDA-graph capture records it.
    """

    def __init__(self, version: str, *, layers=("MATRIX_MULTIPLY", "TOPK", "SOFTMAX", "TOPK"), parse_errors=(),
                 build_fails: bool = False, dla_cores: int = 0, io=()) -> None:
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
        self.classes: dict[str, type] = {}  # the real class name -> the fake's class (checked against the wheels)
        self.Builder, self.OnnxParser, self.Runtime = self._builder(), self._parser(), self._runtime()

    # -- helpers the fake's classes share ------------------------------------------------------------------------
    def record(self, *call) -> None:
        self.calls.append(call)

    def names(self, kind: str) -> list:
        """The arguments of every recorded call named ``kind``, in order."""
        return [c[1:] for c in self.calls if c[0] == kind]

    def init_libnvinfer_plugins(self, logger, namespace: str) -> bool:
        self.record("init_libnvinfer_plugins", namespace)
        return True

    def nptype(self, dtype):
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
            def __init__(self, kind) -> None:
                self.type = kind
                self.precision = None

        class Network:
            def __init__(self, flags: int) -> None:
                self.flags = flags
                self.layers = [Layer(fake.LayerType[k]) for k in fake.layers]
                self.num_layers = len(self.layers)

            def get_layer(self, i: int) -> Layer:
                return self.layers[i]

        class TimingCache:
            def __init__(self, data: bytes) -> None:
                self.data = data

            def serialize(self) -> bytes:
                return self.data + b"+timings"

        class Config:
            def __init__(self) -> None:
                self.cache = None
                self.default_device_type = fake.DeviceType.GPU
                self.DLA_core = -1

            def set_flag(self, flag) -> None:
                fake.record("set_flag", flag.name)

            def set_memory_pool_limit(self, pool, size: int) -> None:
                fake.record("set_memory_pool_limit", pool.name, size)

            def create_timing_cache(self, data: bytes) -> TimingCache:
                fake.record("create_timing_cache", bytes(data))
                return TimingCache(bytes(data))

            def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
                self.cache = cache
                return True

            def get_timing_cache(self):
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
                fake.config = Config()
                return fake.config

            def build_serialized_network(self, network, config):
                fake.record("build_serialized_network")
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

            def parse_from_file(self, path: str) -> bool:
                fake.record("parse_from_file", path)
                self.num_errors = len(self.errors)
                return not self.errors

            def get_error(self, i: int) -> FakeParserError:
                return self.errors[i]

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

            def set_tensor_address(self, name: str, ptr: int) -> bool:
                fake.record("set_tensor_address", name)
                self.addresses[name] = ptr
                return True

            def execute_async_v3(self, stream_handle: int) -> bool:
                fake.record("execute_async_v3")
                fake.cuda.enqueue(stream_handle, lambda: fake.compute(self.addresses))
                return True

        class Engine:
            num_io_tensors = len(fake.io)

            def get_tensor_name(self, i: int) -> str:
                return fake.io[i][0]

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
                pass

            def deserialize_cuda_engine(self, data: bytes):
                fake.record("deserialize_cuda_engine", bytes(data))
                return Engine() if bytes(data).startswith(b"FAKE-ENGINE") else None

        fake.classes.update(Runtime=Runtime, ICudaEngine=Engine, IExecutionContext=Context)
        return Runtime
