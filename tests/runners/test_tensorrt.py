"""TensorRTRunner's control flow on FakeTensorRT + FakeCudart / FakePyCuda (stand-ins: no TensorRT, no GPU, no
pycuda here), and the real cuda-python error path on this GPU-less machine."""

import hashlib
import shutil
import subprocess
import types

import numpy as np
import pytest

from tdm_edge.engine.sidecar import engine_record, write_sidecar
from tdm_edge.errors import UsageError
from tdm_edge.runners import cuda_pycuda, cuda_rt
from tdm_edge.runners.base import FeedError
from tdm_edge.runners.cuda_rt import CudaError
from tdm_edge.runners.tensorrt import TensorRTRunner
from tdm_edge.runners.trt_env import EngineMismatch, numpy_dtype

from ..engine.fake_trt import FakeTensorRT
from .fake_cuda import FakeCudart, FakeCudart11
from .fake_pycuda import FakePyCuda

IO = [("input", "INPUT", "FLOAT", (2, 4)), ("logits", "OUTPUT", "FLOAT", (2, 3))]
GPU = ("FakeGPU Orin", "8.7")


def _view(addr: int, shape) -> np.ndarray:
    n = int(np.prod(shape))
    return np.ctypeslib.as_array((__import__("ctypes").c_float * n).from_address(addr)).reshape(shape)


def _compute(addresses):  # the fake engine: logits = input[:, :3] * 2 + input[:, 3:], on "device" memory
    x = _view(addresses["input"], (2, 4))
    _view(addresses["logits"], (2, 3))[:] = x[:, :3] * 2 + x[:, 3:]


def _use(monkeypatch, fake, cuda=None, pycuda=None):
    """Stand in for cuda-python (``cuda``) and pycuda (``pycuda``; None: not installed) and hand ``fake`` the one
    the runner will queue its work on."""
    monkeypatch.setattr(cuda_rt, "cudart", (lambda: cuda) if cuda is not None else _missing("cuda-python"))
    monkeypatch.setattr(cuda_pycuda, "import_pycuda", (lambda: pycuda) if pycuda is not None else _missing("pycuda"))
    fake.cuda = cuda if cuda is not None else pycuda


def _missing(name):
    def fail():
        raise UsageError(f"{name} is not installed")
    return fail


def _sidecar(engine, **changes):
    fields = dict(trt_version="10.3.0", gpu_name=GPU[0], compute_capability=GPU[1], precision="fp16", dla_core=None,
                  onnx_path="m.onnx", onnx_sha256="0" * 64, plugins={}, meta={})
    fields.update(changes)
    write_sidecar(engine, engine_record(**fields))


@pytest.fixture(scope="module")
def stand_in_plugin(tmp_path_factory):
    """A tiny shared library standing in for a plugin library (a copy of a real one loaded twice with RTLD_GLOBAL
    would run its destructors twice at exit)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("needs a C compiler to build the stand-in plugin library")
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "p.c").write_text("int tdm_stand_in_plugin(void) { return 0; }\n")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / "libstandin.so"), str(folder / "p.c")],
                   check=True, capture_output=True, timeout=60)
    return str(folder / "libstandin.so")


@pytest.fixture
def env(tmp_path, monkeypatch):
    fake, cuda = FakeTensorRT("10.3.0", io=IO), FakeCudart()
    fake.compute = _compute
    _use(monkeypatch, fake, cuda)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"FAKE-ENGINE 10.3.0")
    _sidecar(engine)
    return fake, cuda, engine


def _expected(x):
    return x[:, :3] * 2 + x[:, 3:]


def _infer_three(runner):
    rng = np.random.default_rng(0)
    for _ in range(3):  # three different inputs: a missing synchronisation returns the previous (or no) result
        x = rng.standard_normal((2, 4)).astype(np.float32)
        np.testing.assert_allclose(runner.infer({"input": x})["logits"], _expected(x), rtol=1e-6)


@pytest.mark.parametrize("graph", [False, True])
def test_infer_binds_by_name_and_frees_everything(env, graph):
    fake, cuda, engine = env
    with TensorRTRunner(engine, cuda_graph=graph, cuda="cuda-python", trt=fake) as runner:
        assert [m.describe() for m in runner.input_metadata()] == ["input: float32[2, 4]"]
        assert fake.names("set_tensor_address") == [("input",), ("logits",)]
        warmup = len(fake.names("execute_async_v3"))
        _infer_three(runner)
        with pytest.raises(FeedError, match="shape"):
            runner.infer({"input": np.zeros((1, 4), np.float32)})
        assert len(cuda.live) == 4 and cuda.streams == 1  # 2 tensors x (pinned host + device), allocated once
        assert cuda.queue == []  # nothing left on the stream after an infer
    executes = len(fake.names("execute_async_v3"))
    if graph:  # warm-up + capture at activation; every infer replays the graph, copies included
        assert warmup == 2 and executes == 2 and cuda.calls.count("cudaGraphLaunch") == 3
    else:
        assert warmup == 0 and executes == 3 and "cudaGraphLaunch" not in cuda.calls
    assert cuda.live == {} and cuda.streams == 0 and not runner.is_active
    frees = [c for c in cuda.calls if "Free" in c or "Destroy" in c]
    assert frees == (["cudaGraphExecDestroy", "cudaGraphDestroy"] if graph else []) + \
        ["cudaFree", "cudaFreeHost", "cudaFree", "cudaFreeHost", "cudaStreamDestroy"]


def test_the_outputs_are_read_only_after_the_stream_is_synchronised(env):
    """FakeCudart runs queued work only at a synchronisation, as a GPU finishes it only then: the runner's outputs
    are right only because it synchronises before reading them, and nothing is read while work is pending."""
    fake, cuda, engine = env
    with TensorRTRunner(engine, cuda="cuda-python", trt=fake) as runner:
        x = np.ones((2, 4), np.float32)
        out = runner.infer({"input": x})["logits"]
        last = cuda.calls[-1]
    assert last == "cudaStreamSynchronize" and np.array_equal(out, _expected(x))


def test_pycuda_runs_the_same_data_path(tmp_path, monkeypatch, capsys):
    fake, pycuda = FakeTensorRT("10.3.0", io=IO), FakePyCuda()
    fake.compute = _compute
    _use(monkeypatch, fake, None, pycuda)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"FAKE-ENGINE 10.3.0")
    _sidecar(engine)
    with TensorRTRunner(engine, cuda_graph=True, trt=fake) as runner:  # auto: cuda-python missing -> pycuda
        assert runner.cuda.name == "pycuda"
        _infer_three(runner)
        assert len(pycuda.live) == 4 and pycuda.contexts == 1 and pycuda.pushed == 1
    assert "CUDA graphs need cuda-python 12 or newer" in capsys.readouterr().err  # pycuda: no graph, one note
    assert pycuda.live == {} and pycuda.contexts == 0 and pycuda.pushed == 0
    assert pycuda.calls[-2:] == ["pop", "detach"] and pycuda.calls.count("synchronize") == 3


def test_pycuda_failure_is_one_line_and_frees_what_was_allocated(tmp_path, monkeypatch):
    fake, pycuda = FakeTensorRT("10.3.0", io=IO), FakePyCuda(fail={"mem_alloc"})
    _use(monkeypatch, fake, None, pycuda)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"FAKE-ENGINE 10.3.0")
    _sidecar(engine)
    with pytest.raises(CudaError, match=r"^cuMemAlloc failed: mem_alloc failed: out of memory$"):
        TensorRTRunner(engine, cuda="pycuda", trt=fake).activate()
    assert pycuda.live == {} and pycuda.contexts == 0


def test_auto_picks_cuda_python_only_when_it_matches_the_driver(env, monkeypatch):
    fake, cuda, engine = env
    pycuda = FakePyCuda()
    monkeypatch.setattr(cuda_pycuda, "import_pycuda", lambda: pycuda)
    assert isinstance(cuda_pycuda.open_cuda("auto"), cuda_rt.CudaPython)
    cuda.driver_version = 11040  # a CUDA 11.4 driver (JetPack 5) under 12.x bindings
    assert isinstance(cuda_pycuda.open_cuda("auto"), cuda_pycuda.PyCuda)
    monkeypatch.setattr(cuda_pycuda, "import_pycuda", _missing("pycuda"))
    with pytest.raises(UsageError, match=r"^no usable CUDA binding: cuda-python's CUDA is newer than the driver.*; "
                                         r"pycuda is not installed$"):
        cuda_pycuda.open_cuda("auto")
    with pytest.raises(UsageError, match="unknown --cuda 'cupy'"):
        cuda_pycuda.open_cuda("cupy")


def test_cuda_python_11_runs_without_a_graph(env, monkeypatch, capsys):
    fake, _, engine = env
    cuda = FakeCudart11()
    _use(monkeypatch, fake, cuda)
    with TensorRTRunner(engine, cuda_graph=True, cuda="cuda-python", trt=fake) as runner:
        _infer_three(runner)
    assert "cudaGraphInstantiate" not in cuda.calls and "cudaStreamBeginCapture" not in cuda.calls
    assert "without one (cuda-python)" in capsys.readouterr().err


def test_dla_core_is_set_on_the_runtime_before_deserialising(env):
    fake, cuda, engine = env
    _sidecar(engine, dla_core=1)
    with TensorRTRunner(engine, cuda="cuda-python", trt=fake):
        pass
    assert fake.names("runtime.DLA_core") == [(1,)] and fake.before("runtime.DLA_core", "deserialize_cuda_engine")
    assert fake.engine_dla_core == 1
    with TensorRTRunner(engine, cuda="cuda-python", trt=fake, dla_core=0):  # the caller's choice wins
        pass
    assert fake.engine_dla_core == 0
    _sidecar(engine)
    with TensorRTRunner(engine, cuda="cuda-python", trt=fake):  # a GPU engine: the runtime's core is left alone
        pass
    assert fake.engine_dla_core == -1


def test_tensorrt_8_5_2_runs_without_its_nptype(env, tmp_path):
    """8.5.1-8.5.2's trt.nptype reads np.bool, which numpy 1.24-1.26 lack (FakeTensorRT fails the same way)."""
    _, cuda, _ = env
    fake = FakeTensorRT("8.5.2.2", io=IO)
    fake.cuda, fake.compute = cuda, _compute
    with pytest.raises(AttributeError, match="np|numpy"):
        fake.nptype(fake.DataType.FLOAT)
    engine = tmp_path / "old.engine"
    engine.write_bytes(b"FAKE-ENGINE 8.5.2.2")
    _sidecar(engine, trt_version="8.5.2.2")
    with TensorRTRunner(engine, cuda="cuda-python", trt=fake) as runner:
        _infer_three(runner)


def test_numpy_dtypes_by_name():
    kinds = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
             "BOOL": np.bool_, "UINT8": np.uint8}
    for name, dtype in kinds.items():
        assert numpy_dtype(types.SimpleNamespace(name=name)) == np.dtype(dtype)
    with pytest.raises(UsageError, match="^tensor 'x' is TensorRT BF16, which numpy cannot hold"):
        numpy_dtype(types.SimpleNamespace(name="BF16"), "tensor 'x'")


def test_a_failed_allocation_frees_what_was_allocated(env, monkeypatch):
    fake, _, engine = env
    cuda = FakeCudart(fail={"cudaMalloc": 2})
    _use(monkeypatch, fake, cuda)
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
    _use(monkeypatch, fake, cuda)
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


def test_real_cuda_python_without_a_driver_is_not_picked_by_auto():
    """The real cuda-python here (no NVIDIA driver: cudaDriverGetVersion says 0) does not match the driver, so auto
    falls back to pycuda, which is not installed: one line naming both reasons."""
    rt = pytest.importorskip("cuda.bindings.runtime")
    if rt.cudaDriverGetVersion()[1] > 0:
        pytest.skip("an NVIDIA driver is present")
    pytest.importorskip("numpy")
    try:
        import pycuda  # noqa: F401
        pytest.skip("pycuda is installed")
    except ImportError:
        pass
    assert not cuda_rt.driver_matches(rt) and cuda_rt.graph_instantiate_takes_flags(rt)
    with pytest.raises(UsageError, match=r"^no usable CUDA binding: cuda-python's CUDA is newer than the driver "
                                         r"\(or no driver\); pycuda is not installed: pip install pycuda"):
        cuda_pycuda.open_cuda("auto")


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


def test_plugin_libraries_must_be_the_engines(env, tmp_path, stand_in_plugin):
    fake, cuda, engine = env
    plugin = stand_in_plugin
    from tdm_edge.engine.sidecar import sha256_file

    _sidecar(engine, plugins={"libtdm_merge.so": sha256_file(plugin)})
    with pytest.raises(EngineMismatch, match="built with plugin library libtdm_merge.so .sha256 [0-9a-f]{64}., "
                                             "which is not loaded .or differs.: pass the same library with --plugins"):
        TensorRTRunner(engine, trt=fake, plugins=[np.linalg._umath_linalg.__file__]).activate()  # another library
    assert fake.names("deserialize_cuda_engine") == []
    with TensorRTRunner(engine, trt=fake, plugins=[plugin]) as runner:
        assert runner.input_metadata()[0].name == "input"
    assert fake.names("init_libnvinfer_plugins") == [("",), ("",)] and cuda.live == {}  # one per activation


def test_plugins_from_the_sidecar_beside_the_engine_or_on_the_search_path(env, tmp_path, monkeypatch,
                                                                          stand_in_plugin):
    fake, cuda, engine = env
    plugin = stand_in_plugin
    digest = hashlib.sha256(open(plugin, "rb").read()).hexdigest()
    _sidecar(engine, plugins={"libtdm_merge.so": digest})
    monkeypatch.delenv("TDM_EDGE_PLUGIN_PATH", raising=False)
    with pytest.raises(EngineMismatch) as info:
        TensorRTRunner(engine, trt=fake).activate()
    assert str(info.value) == (f"the engine needs plugin library libtdm_merge.so (sha256 {digest}), which is not in "
                               f"{tmp_path}: pass it with --plugins PATH, or add its folder to $TDM_EDGE_PLUGIN_PATH")
    assert fake.names("deserialize_cuda_engine") == [] and fake.names("init_libnvinfer_plugins") == []
    elsewhere = tmp_path / "plugins"
    elsewhere.mkdir()
    shutil.copy(plugin, elsewhere / "libtdm_merge.so")
    monkeypatch.setenv("TDM_EDGE_PLUGIN_PATH", str(elsewhere))
    with TensorRTRunner(engine, trt=fake):  # found on the search path
        pass
    assert fake.names("init_libnvinfer_plugins") == [("",)]
    assert fake.before("init_libnvinfer_plugins", "deserialize_cuda_engine")
    (tmp_path / "libtdm_merge.so").write_bytes(b"another build")  # beside the engine, but not the same library
    with TensorRTRunner(engine, trt=fake):  # beside it differs: the search path's matching one is used
        pass
    monkeypatch.delenv("TDM_EDGE_PLUGIN_PATH")
    with pytest.raises(EngineMismatch, match="libtdm_merge.so .sha256 [0-9a-f]{64}., which differs .another build. in"):
        TensorRTRunner(engine, trt=fake).activate()
    shutil.copy(plugin, tmp_path / "libtdm_merge.so")
    with TensorRTRunner(engine, trt=fake):  # beside the engine
        pass
