"""TensorRTRunner's control flow on FakeTensorRT + FakeCudart (stand-ins: no TensorRT, no GPU here), and the real
cuda-python error path on this GPU-less machine."""

import ctypes
import types

import numpy as np
import pytest

from tdm_edge.engine.sidecar import engine_record, write_sidecar
from tdm_edge.errors import UsageError
from tdm_edge.runners import cuda_rt
from tdm_edge.runners import tensorrt as trt_runner
from tdm_edge.runners.base import FeedError
from tdm_edge.runners.cuda_rt import CudaError
from tdm_edge.runners.tensorrt import TensorRTRunner
from tdm_edge.runners.trt_env import EngineMismatch

from ..engine.fake_trt import FakeTensorRT
from .fake_cuda import FakeCudart

IO = [("input", "INPUT", "FLOAT", (2, 4)), ("logits", "OUTPUT", "FLOAT", (2, 3))]
GPU = ("FakeGPU Orin", "8.7")


def _view(addr: int, shape) -> np.ndarray:
    n = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_float * n).from_address(addr)).reshape(shape)


def _compute(addresses):  # the fake engine: logits = input[:, :3] * 2 + input[:, 3:], on "device" memory
    x = _view(addresses["input"], (2, 4))
    _view(addresses["logits"], (2, 3))[:] = x[:, :3] * 2 + x[:, 3:]


@pytest.fixture
def env(tmp_path, monkeypatch):
    fake, cuda = FakeTensorRT("10.3.0", io=IO), FakeCudart()
    fake.cuda, fake.compute = cuda, _compute
    for module in (trt_runner, cuda_rt):
        monkeypatch.setattr(module, "cudart", lambda: cuda)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"FAKE-ENGINE 10.3.0")
    write_sidecar(engine, engine_record(trt_version="10.3.0", gpu_name=GPU[0], compute_capability=GPU[1],
                                        precision="fp16", dla_core=None, onnx_path="m.onnx", onnx_sha256="0" * 64,
                                        plugins={}, meta={}))
    return fake, cuda, engine


def _expected(x):
    return x[:, :3] * 2 + x[:, 3:]


@pytest.mark.parametrize("graph", [False, True])
def test_infer_binds_by_name_and_frees_everything(env, graph):
    fake, cuda, engine = env
    rng = np.random.default_rng(0)
    with TensorRTRunner(engine, cuda_graph=graph, trt=fake) as runner:
        assert [m.describe() for m in runner.input_metadata()] == ["input: float32[2, 4]"]
        assert fake.names("set_tensor_address") == [("input",), ("logits",)]
        warmup = len(fake.names("execute_async_v3"))
        for _ in range(3):
            x = rng.standard_normal((2, 4)).astype(np.float32)
            out = runner.infer({"input": x})
            np.testing.assert_allclose(out["logits"], _expected(x), rtol=1e-6)
        with pytest.raises(FeedError, match="shape"):
            runner.infer({"input": np.zeros((1, 4), np.float32)})
        assert len(cuda.live) == 4 and cuda.streams == 1  # 2 tensors x (pinned host + device), allocated once
    executes = len(fake.names("execute_async_v3"))
    if graph:  # warm-up + capture at activation; every infer replays the graph, copies included
        assert warmup == 2 and executes == 2 and cuda.calls.count("cudaGraphLaunch") == 3
    else:
        assert warmup == 0 and executes == 3 and "cudaGraphLaunch" not in cuda.calls
    assert cuda.live == {} and cuda.streams == 0 and not runner.is_active
    frees = [c for c in cuda.calls if "Free" in c or "Destroy" in c]
    assert frees == (["cudaGraphExecDestroy", "cudaGraphDestroy"] if graph else []) + \
        ["cudaFree", "cudaFreeHost", "cudaFree", "cudaFreeHost", "cudaStreamDestroy"]


def test_a_failed_allocation_frees_what_was_allocated(env, monkeypatch):
    fake, _, engine = env
    cuda = FakeCudart(fail={"cudaMalloc": 2})
    fake.cuda = cuda
    for module in (trt_runner, cuda_rt):
        monkeypatch.setattr(module, "cudart", lambda: cuda)
    runner = TensorRTRunner(engine, trt=fake)
    with pytest.raises(CudaError, match=r"^cudaMalloc failed: cudaErrorMemoryAllocation \(2\)$"):
        runner.activate()
    assert cuda.live == {} and cuda.streams == 0 and not runner.is_active


def test_engine_from_another_tensorrt_or_gpu_is_refused_before_deserialising(env, monkeypatch):
    fake, _, engine = env
    other = FakeTensorRT("10.7.0", io=IO)
    with pytest.raises(EngineMismatch) as info:
        TensorRTRunner(engine, trt=other).activate()
    assert str(info.value) == ("the engine was built with TensorRT 10.3.0 (this is 10.7.0): rebuild it here with "
                               "tdm-edge build m.onnx")
    cuda = FakeCudart()
    cuda.cudaGetDeviceProperties = lambda device: (0, types.SimpleNamespace(name=b"NVIDIA H100", major=9, minor=0))
    monkeypatch.setattr(cuda_rt, "cudart", lambda: cuda)
    monkeypatch.setattr(trt_runner, "cudart", lambda: cuda)
    expected = r"built for a GPU of compute capability 8.7 \(FakeGPU Orin; this one is 9.0, NVIDIA H100\)"
    with pytest.raises(EngineMismatch, match=expected):
        TensorRTRunner(engine, trt=fake).activate()
    assert fake.names("deserialize_cuda_engine") == [] and other.names("deserialize_cuda_engine") == []


def test_missing_sidecar_or_engine_and_bad_engines(env, tmp_path):
    fake, cuda, engine = env
    (tmp_path / "m.engine.json").unlink()
    with pytest.raises(UsageError, match="m.engine.json is missing"):
        TensorRTRunner(engine, trt=fake).activate()
    with pytest.raises(UsageError, match="engine not found"):
        TensorRTRunner(tmp_path / "none.engine", trt=fake).activate()
    (tmp_path / "junk.engine").write_bytes(b"junk")
    with pytest.raises(UsageError, match="cannot deserialise"):
        TensorRTRunner(tmp_path / "junk.engine", trt=fake, check_sidecar=False).activate()
    fake.io = [("input", "INPUT", "FLOAT", (-1, 4)), ("logits", "OUTPUT", "FLOAT", (-1, 3))]
    with pytest.raises(UsageError, match="dynamic shape"):
        TensorRTRunner(engine, trt=fake, check_sidecar=False).activate()
    assert cuda.live == {} and cuda.streams == 0


def test_real_cuda_python_errors_are_one_line_without_a_gpu():
    """The real cuda-python (installed with torch) on this GPU-less machine: calls fail, check() says which."""
    pytest.importorskip("cuda.bindings.runtime")
    rt = cuda_rt.cudart()
    if rt.cudaGetDeviceCount()[0] == 0 and rt.cudaGetDeviceCount()[1] > 0:
        pytest.skip("a CUDA device is present")
    with pytest.raises(CudaError, match=r"^cudaMalloc failed: cudaError\w+ \(\d+\)$"):
        cuda_rt.check(rt.cudaMalloc(16), "cudaMalloc")
    with pytest.raises(CudaError, match=r"^cudaGetDeviceProperties failed: cudaError\w+"):
        cuda_rt.device_info()


@pytest.mark.gpu
def test_real_engine_matches_onnx_runtime(tmp_path):
    """Build and run a real engine: needs TensorRT and a GPU (skipped here; never run by us yet)."""
    pytest.importorskip("tensorrt", reason="needs TensorRT")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from tdm_edge.engine.build import build_engine
    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.reduce.patch import patch_vit
    from tdm_edge.runners.onnxrt import OnnxRuntimeRunner

    from ..conftest import tiny_vit

    export_onnx(patch_vit(tiny_vit(), "bat", 0.7), tmp_path / "m.onnx", batch=2, verify=False)
    build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", precision="fp32")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with OnnxRuntimeRunner(tmp_path / "m.onnx") as ort:
        ref = ort.infer({"input": x})["logits"]
    for graph in (False, True):
        with TensorRTRunner(tmp_path / "m.engine", cuda_graph=graph) as runner:
            assert np.abs(runner.infer({"input": x})["logits"] - ref).max() <= 1e-3


def test_plugin_libraries_must_be_the_engines(env, tmp_path):
    fake, cuda, engine = env
    plugin = np._core._multiarray_umath.__file__  # any loadable shared library stands in for a plugin
    from tdm_edge.engine.sidecar import sha256_file

    write_sidecar(engine, engine_record(trt_version="10.3.0", gpu_name=GPU[0], compute_capability=GPU[1],
                                        precision="fp16", dla_core=None, onnx_path="m.onnx", onnx_sha256="0" * 64,
                                        plugins={"libtdm_merge.so": sha256_file(plugin)}, meta={}))
    with pytest.raises(EngineMismatch, match="built with plugin library libtdm_merge.so, which is not loaded"):
        TensorRTRunner(engine, trt=fake).activate()
    assert fake.names("deserialize_cuda_engine") == []
    with TensorRTRunner(engine, trt=fake, plugins=[plugin]) as runner:
        assert runner.input_metadata()[0].name == "input"
    assert fake.names("init_libnvinfer_plugins") == [("",)] and cuda.live == {}
