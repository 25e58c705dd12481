"""Engine on first run (tdm_edge.engine.cache) on FakeTensorRT (a stand-in: no TensorRT here): hit, miss,
sidecar mismatch, rebuild, the shared timing cache, plugins, progress."""

import shutil
import subprocess
import threading

import pytest

from tdm_edge.engine import cache
from tdm_edge.errors import DeviceError, UsageError

from .conftest import write_onnx
from .fake_trt import FakeTensorRT

GPU = ("NVIDIA Orin", "8.7")


def engine(onnx, tmp_path, fake, lines=None, **kw):
    kw.setdefault("gpu", GPU)
    return cache.cached_engine(onnx, trt=fake, log=(lines if lines is not None else []).append, **kw)


def test_first_run_builds_beside_the_onnx_and_the_second_reuses_it(tiny_onnx, tmp_path):
    fake, lines = FakeTensorRT("10.3.0"), []
    path = engine(tiny_onnx, tmp_path, fake, lines)
    assert path == tmp_path / "m.10.3.0.orin-sm87.fp16.engine"
    assert path.read_bytes() == b"FAKE-ENGINE 10.3.0" and (tmp_path / "m.10.3.0.orin-sm87.fp16.engine.json").is_file()
    assert lines[0] == "building m.10.3.0.orin-sm87.fp16.engine with TensorRT 10.3.0 (fp16); once, then cached " \
                       "(minutes on a Jetson)" and lines[-1].startswith(f"built {path} in ")
    assert (tmp_path / "timing.10.3.0.cache").read_bytes() == b"+timings"  # the shared timing cache, written
    again, lines = FakeTensorRT("10.3.0"), []
    assert engine(tiny_onnx, tmp_path, again, lines) == path
    assert again.calls == [] and lines == [f"using the cached engine {path}"]  # a hit builds nothing


@pytest.mark.parametrize("change, reason", [
    ("onnx", "the ONNX changed"), ("trt", None), ("precision", None), ("sidecar", "is missing")])
def test_a_mismatching_engine_is_rebuilt(tiny_onnx, tmp_path, change, reason):
    path = engine(tiny_onnx, tmp_path, FakeTensorRT("10.3.0"))
    kw, version = {}, "10.3.0"
    if change == "onnx":
        write_onnx(tiny_onnx, weights={"file": "other.pth", "sha256": "cd" * 32})
    elif change == "trt":  # another TensorRT: another file name, the old engine is left alone
        version = "10.7.0"
    elif change == "precision":
        kw["precision"] = "fp32"
    else:
        (tmp_path / (path.name + ".json")).unlink()
    fake, lines = FakeTensorRT(version), []
    built = engine(tiny_onnx, tmp_path, fake, lines, **kw)
    assert fake.names("build_serialized_network") == [()]
    if reason:
        assert built == path and reason in lines[0] and lines[0].endswith(": rebuilding it")
    else:
        assert built != path and path.is_file() and lines[0].startswith("building ")


def test_rebuild_and_engine_cache_folder(tiny_onnx, tmp_path):
    folder = tmp_path / "engines"
    folder.mkdir()
    path = engine(tiny_onnx, tmp_path, FakeTensorRT("11.0.0.114"), cache_dir=folder, precision="fp32")
    assert path == folder / "m.11.0.0.114.orin-sm87.fp32.engine" and (folder / "timing.11.0.0.114.cache").is_file()
    fake = FakeTensorRT("11.0.0.114")
    engine(tiny_onnx, tmp_path, fake, cache_dir=folder, precision="fp32", rebuild=True)
    assert fake.names("build_serialized_network") == [()]
    assert fake.names("create_timing_cache") == [(b"+timings",)]  # the shared cache is read back
    with pytest.raises(UsageError, match="no such directory"):
        engine(tiny_onnx, tmp_path, fake, cache_dir=tmp_path / "none")


def test_plugins_must_match_a_cached_engine(tiny_onnx, tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("needs a C compiler to build a stand-in plugin library")
    (tmp_path / "p.c").write_text("int tdm_cache_plugin(void) { return 1; }\n")
    lib = tmp_path / "libp.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(lib), str(tmp_path / "p.c")], check=True, timeout=60)
    path = engine(tiny_onnx, tmp_path, FakeTensorRT("10.3.0"), plugins=[lib])
    fake, lines = FakeTensorRT("10.3.0"), []
    assert engine(tiny_onnx, tmp_path, fake, lines, plugins=[lib]) == path and fake.calls == []
    assert engine(tiny_onnx, tmp_path, fake, lines) == path and fake.calls == []  # none given: the sidecar's
    other = FakeTensorRT("10.3.0")
    (tmp_path / "q.c").write_text("int tdm_cache_plugin2(void) { return 2; }\n")
    lib2 = tmp_path / "libq.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(lib2), str(tmp_path / "q.c")], check=True, timeout=60)
    lines = []
    engine(tiny_onnx, tmp_path, other, lines, plugins=[lib2])
    assert "built with other plugin libraries" in lines[0] and other.names("build_serialized_network") == [()]


def test_dla_names_the_core_and_builds_fp16(tiny_onnx, tmp_path):
    fake = FakeTensorRT("8.5.2.2", dla_cores=2)
    path = engine(tiny_onnx, tmp_path, fake, dla_core=1, precision="fp32")
    assert path.name == "m.8.5.2.2.orin-sm87-dla1.fp16.engine"
    assert fake.names("config.DLA_core") == [(1,)] and ("FP16",) in fake.names("set_flag")


def test_progress_while_building_and_failures_in_one_line(tiny_onnx, tmp_path):
    fake, lines = FakeTensorRT("10.3.0", log=[("WARNING", "LayerNorm in fp16 may overflow")]), []
    beat = threading.Event()
    builder_class = fake.Builder

    class SlowBuilder(builder_class):
        def build_serialized_network(self, network, config):
            assert beat.wait(30), "no progress line while building"
            return super().build_serialized_network(network, config)

    fake.Builder = SlowBuilder

    def log(line):
        lines.append(line)
        if line.startswith("still building"):
            beat.set()

    cache.cached_engine(tiny_onnx, trt=fake, gpu=GPU, log=log, heartbeat_s=0.01)
    assert any(line.startswith("still building m.10.3.0.orin-sm87.fp16.engine (0:") for line in lines)
    assert "TensorRT warning: LayerNorm in fp16 may overflow" in lines  # TensorRT's warnings reach the user
    with pytest.raises(DeviceError, match="could not build the engine: FakeTensorRT: no implementation for TopK"):
        engine(tiny_onnx, tmp_path, FakeTensorRT("10.3.0", build_fails=True), rebuild=True)
    with pytest.raises(UsageError, match=r"parser rejected .* \(1 node\(s\)\); tdm-edge check .* --trt 10"):
        engine(tiny_onnx, tmp_path, FakeTensorRT("10.3.0", parse_errors=[(1, "bad K")]), rebuild=True)


def test_device_names():
    assert cache.device_name(("NVIDIA GeForce RTX 4090", "8.9")) == "geforce-rtx-4090-sm89"
    assert cache.device_name(("unknown", "unknown")) == "unknown"
    assert cache.device_name(("Orin", "8.7"), 0) == "orin-sm87-dla0"


@pytest.mark.slow  # a torch export and two camera-loop runs: about 15 s on the shared 2-core machine
def test_run_an_onnx_on_trt_builds_the_engine_once_then_reuses_it(tmp_path, monkeypatch, capsys):
    """``tdm-edge run synthetic:// --model tiny.onnx --backend trt`` end to end, TensorRT and CUDA stood in by
    FakeTensorRT and FakeCudart: built on the first run, reused on the second, its outputs reach the log."""
    pytest.importorskip("torch")
    pytest.importorskip("cv2")
    import ctypes
    import json
    import sys

    import numpy as np

    from tdm_edge.cli import main
    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.reduce.patch import patch_vit
    from tdm_edge.runners import cuda_rt

    from ..conftest import tiny_vit
    from ..runners.fake_cuda import FakeCudart

    onnx_path = tmp_path / "tiny.onnx"
    labels = [f"class {i}" for i in range(10)]
    export_onnx(patch_vit(tiny_vit(num_classes=10), "bat", 0.7), onnx_path, labels=labels, name="tiny", verify=False)

    def compute(addresses):  # the stand-in engine: class 3 wins whatever the frame
        logits = np.ctypeslib.as_array((ctypes.c_float * 10).from_address(addresses["logits"]))
        logits[:] = np.arange(10, dtype=np.float32) == 3

    cuda = FakeCudart()
    monkeypatch.setattr(cuda_rt, "cudart", lambda: cuda)
    monkeypatch.setattr("tdm_edge.runners.gpu_info.gpu_info", lambda device=0: ("FakeGPU Orin", "8.7"))
    fakes = []
    for attempt in range(2):
        fake = FakeTensorRT("10.3.0", io=[("input", "INPUT", "FLOAT", (1, 3, 32, 32)),
                                          ("logits", "OUTPUT", "FLOAT", (1, 10))])
        fake.cuda, fake.compute = cuda, compute
        fakes.append(fake)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        log = tmp_path / f"log{attempt}.jsonl"
        code = main(["run", "synthetic://", "--model", str(onnx_path), "--backend", "trt", "--headless",
                     "--max-frames", "2", "--log", str(log)])  # --cuda auto: FakeCudart matches its driver
        err = capsys.readouterr().err
        assert code == 0, err
        records = [json.loads(line) for line in log.read_text().splitlines()]
        shown = [r["top"][0]["label"] for r in records if not r["dropped"]]  # a live source may drop a frame
        assert shown and set(shown) == {"class 3"}
    engine_file = tmp_path / "tiny.10.3.0.fakegpu-orin-sm87.fp16.engine"
    assert engine_file.is_file() and fakes[0].names("build_serialized_network") == [()]
    assert fakes[1].names("build_serialized_network") == [] and f"using the cached engine {engine_file}" in err
