"""tdm-edge build's control flow per TensorRT version, on FakeTensorRT (a stand-in: no TensorRT here)."""

import json
import os
import stat

import numpy as np
import pytest

from tdm_edge.cli import main
from tdm_edge.engine.build import BuildFailure, ParserFailure, build_engine
from tdm_edge.engine.sidecar import sha256_file
from tdm_edge.errors import UsageError
from tdm_edge.runners import trt_env

from .conftest import write_onnx
from .fake_trt import FakeTensorRT

GPU = ("FakeGPU Orin", "8.7")


def build(fake, onnx_path, tmp_path, **kw):
    return build_engine(onnx_path, tmp_path / "m.engine", trt=fake, gpu=GPU, **kw)


@pytest.mark.parametrize("version, net_flags", [("8.5.2.2", 1 << 0), ("8.6.1", 1 << 0), ("10.3.0", 0),
                                                ("11.0.0.114", 1 << 0)])
def test_fp16_calls_per_version(version, net_flags, tiny_onnx, tmp_path, capsys):
    fake = FakeTensorRT(version)
    onnx_path = tiny_onnx if version[:2] != "11" else write_onnx(tmp_path / "h.onnx", dtype=np.float16)
    report = build(fake, onnx_path, tmp_path, precision="fp16")
    assert fake.names("create_network") == [(net_flags,)]  # EXPLICIT_BATCH (8.x), 0 (10), STRONGLY_TYPED (11)
    topk = [layer._precision for layer in fake.network.layers if layer.type == fake.LayerType.TOPK]
    if version.startswith("11"):
        assert fake.names("set_flag") == []  # no FP16 flag exists: the fp16 ONNX's types decide
        assert topk == [None, None] and report.pinned_fp32_layers == 0
    else:
        assert fake.names("set_flag") == [("FP16",), ("OBEY_PRECISION_CONSTRAINTS",)]
        assert topk == [fake.float32, fake.float32] and report.pinned_fp32_layers == 2
    assert (tmp_path / "m.engine").read_bytes() == b"FAKE-ENGINE " + version.encode()
    assert "random weights" in capsys.readouterr().err  # warn_if_random


def test_int8_and_options_on_10(tmp_path):
    fake = FakeTensorRT("10.3.0", dla_cores=2)
    onnx_path = write_onnx(tmp_path / "q.onnx", qdq=True, weights={"file": "deit.pth", "sha256": "ab" * 32})
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"old")
    plugin = np._core._multiarray_umath.__file__  # any loadable shared library stands in for a plugin
    report = build(fake, onnx_path, tmp_path, precision="int8", workspace_mib=512, timing_cache=cache, dla_core=1,
                   plugins=[plugin])
    assert fake.names("set_flag") == [("INT8",), ("FP16",), ("OBEY_PRECISION_CONSTRAINTS",), ("GPU_FALLBACK",)]
    assert fake.names("set_memory_pool_limit") == [("WORKSPACE", 512 << 20)]
    assert fake.names("init_libnvinfer_plugins") == [("",)]
    assert fake.config.default_device_type == fake.DeviceType.DLA and fake.config.DLA_core == 1
    assert fake.names("create_timing_cache") == [(b"old",)] and cache.read_bytes() == b"old+timings"
    side = json.loads(report.sidecar_path.read_text())
    assert report.sidecar_path == tmp_path / "m.engine.json"
    assert side["tensorrt"] == {"version": "10.3.0"} and side["gpu"] == {"name": GPU[0], "compute_capability": "8.7"}
    assert side["precision"] == "int8" and side["dla_core"] == 1
    assert side["token_schedule"]["stage_tokens"] == [65, 46, 33]
    assert side["plugins"][0]["file"] == os.path.basename(plugin) and len(side["plugins"][0]["sha256"]) == 64
    import hashlib
    assert side["onnx"] == {"file": "q.onnx", "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest()}
    assert side["metadata"]["weights"]["file"] == "deit.pth"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "m.engine").st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("version, dtype, qdq, expected", [("10.3.0", np.float32, False, "fp16"),
                                                           ("10.3.0", np.float32, True, "int8"),
                                                           ("11.0.0.114", np.float32, False, "fp32"),
                                                           ("11.0.0.114", np.float16, False, "fp16")])
def test_default_precision(version, dtype, qdq, expected, tmp_path):
    report = build(FakeTensorRT(version), write_onnx(tmp_path / "d.onnx", dtype=dtype, qdq=qdq), tmp_path)
    assert report.precision == expected


def test_dla_core_out_of_range(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="--dla 0: this device has 0 DLA core"):
        build(FakeTensorRT("8.5.2.2"), tiny_onnx, tmp_path, dla_core=0)


def test_11_refuses_fp16_from_an_fp32_onnx_before_building(tiny_onnx, tmp_path):
    fake = FakeTensorRT("11.0.0.114")
    with pytest.raises(UsageError, match="strongly typed"):
        build(fake, tiny_onnx, tmp_path, precision="fp16")
    assert fake.calls == [] and not (tmp_path / "m.engine").exists()


def test_parser_errors_one_line_per_node(tiny_onnx, tmp_path):
    fake = FakeTensorRT("8.6.1", parse_errors=[(1, "TopK: K must be\n an initializer"), (1, "second"),
                                                 (3, "Softmax axis"), (-1, "opset 21 unsupported")])
    with pytest.raises(ParserFailure) as info:
        build(fake, tiny_onnx, tmp_path)
    assert info.value.lines == ["node 1 (TopK '/blocks.3/TopK'): TopK: K must be an initializer (+1 more)",
                                "node 3 (Softmax '/softmax'): Softmax axis",
                                "graph: opset 21 unsupported"]
    assert not (tmp_path / "m.engine").exists()


def test_builder_failure_keeps_an_existing_engine(tiny_onnx, tmp_path):
    (tmp_path / "m.engine").write_bytes(b"previous")
    with pytest.raises(BuildFailure, match="could not build the engine: FakeTensorRT: no implementation for TopK"):
        build(FakeTensorRT("10.3.0", build_fails=True), tiny_onnx, tmp_path)
    assert (tmp_path / "m.engine").read_bytes() == b"previous"


def test_bad_inputs(tiny_onnx, tmp_path):
    fake = FakeTensorRT("10.3.0")
    with pytest.raises(UsageError, match="plugin library not found"):
        build(fake, tiny_onnx, tmp_path, plugins=[tmp_path / "nope.so"])
    (tmp_path / "bad.so").write_bytes(b"not a library")
    with pytest.raises(UsageError, match="cannot load plugin library"):
        build(fake, tiny_onnx, tmp_path, plugins=[tmp_path / "bad.so"])
    with pytest.raises(UsageError, match="would overwrite the ONNX"):
        build_engine(tiny_onnx, tiny_onnx, trt=fake, gpu=GPU)
    with pytest.raises(UsageError, match="--workspace must be a positive"):
        build(fake, tiny_onnx, tmp_path, workspace_mib=0)
    with pytest.raises(UsageError, match="not supported"):
        build(FakeTensorRT("8.4.3"), tiny_onnx, tmp_path)
    import onnx
    model = onnx.load(str(tiny_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(model, str(tmp_path / "dyn.onnx"))
    with pytest.raises(UsageError, match=r"'input' has a dynamic shape \['batch', 4\].*--batch N"):
        build(fake, tmp_path / "dyn.onnx", tmp_path)


def test_build_without_tensorrt_exits_2_with_one_line(tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)  # as if it were not installed
    assert main(["build", str(tiny_onnx), "-o", str(tmp_path / "m.engine")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TensorRT is not installed" in err and "tdm-edge[trt]" in err
    monkeypatch.setattr(trt_env.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(trt_env.os.path, "exists", lambda p: p == "/etc/nv_tegra_release")
    assert "JetPack" in trt_env.install_hint()


def test_build_command_prints_parser_lines(tiny_onnx, tmp_path, capsys, monkeypatch):
    fake = FakeTensorRT("10.3.0", parse_errors=[(1, "bad K")])
    monkeypatch.setattr("tdm_edge.engine.build.import_tensorrt", lambda: fake)
    monkeypatch.setattr("tdm_edge.runners.gpu_info.gpu_info", lambda device=0: GPU)
    assert main(["build", str(tiny_onnx), "-o", str(tmp_path / "m.engine")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1] == "tdm-edge build: node 1 (TopK '/blocks.3/TopK'): bad K"
    # the random-weights warning, the node, the summary naming the lint's version
    assert "rejected" in err[2] and err[2].endswith("--trt 10.3 lints it without TensorRT") and len(err) == 3
    fake.parse_errors = []
    assert main(["build", str(tiny_onnx), "-o", str(tmp_path / "m.engine"), "--precision", "fp32"]) == 0
    assert "TensorRT 10.3.0, fp32 (builder flags: none)" in capsys.readouterr().out


def test_a_real_export_builds_and_its_schedule_reaches_the_sidecar(tmp_path):
    """tdm-edge export's real output (tiny BAT ViT) through build, TensorRT stood in by FakeTensorRT."""
    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.reduce.patch import patch_vit

    from ..conftest import tiny_vit

    model = patch_vit(tiny_vit(), "bat", 0.7)
    export_onnx(model, tmp_path / "bat.onnx", batch=2, verify=False, simplify=False)
    report = build(FakeTensorRT("8.5.2.2"), tmp_path / "bat.onnx", tmp_path)
    side = json.loads(report.sidecar_path.read_text())
    assert side["token_schedule"]["stage_tokens"] == model.tdm_schedule.stage_tokens
    assert side["precision"] == "fp16" and side["metadata"]["onnx"]["batch"] == 2
    assert side["onnx"]["sha256"] == sha256_file(tmp_path / "bat.onnx")


def test_timing_cache_is_checked_and_written_after_the_engine(tiny_onnx, tmp_path, monkeypatch):
    from tdm_edge.engine import build as build_module

    written = []
    real_write = build_module.atomic_write
    monkeypatch.setattr(build_module, "atomic_write", lambda path, data: (written.append(path.name),
                                                                          real_write(path, data)))
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"from another GPU")
    fake = FakeTensorRT("10.3.0", cache_mismatch=True)
    report = build(fake, tiny_onnx, tmp_path, timing_cache=cache)
    # refused (set_timing_cache returned False): a fresh cache is used instead, and the build goes on
    assert fake.names("set_timing_cache") == [(b"from another GPU",), (b"",)]
    assert report.notes == [f"timing cache {cache} is from another GPU or TensorRT: not used; a new one replaces it"]
    assert fake.before("set_timing_cache", "build_serialized_network")
    assert written[0] == "m.engine" and written[-1] == "t.cache"  # the engine is safe before the cache is touched
    assert cache.read_bytes() == b"+timings"


def test_a_failing_timing_cache_write_keeps_the_engine(tiny_onnx, tmp_path):
    cache = tmp_path / "t.cache"
    cache.mkdir()  # a folder where the cache file goes: reading and writing it fail
    with pytest.raises(IsADirectoryError):
        cache.read_bytes()
    fake = FakeTensorRT("10.3.0")
    from tdm_edge.engine import build as build_module

    notes: list = []
    build_module._write_timing_cache(fake.Builder(None).create_builder_config(), cache, notes)
    assert len(notes) == 1 and notes[0].startswith(f"timing cache not saved to {cache}")


def test_the_builder_config_is_complete_before_the_build(tiny_onnx, tmp_path):
    """FakeTensorRT freezes the config at build_serialized_network: every setting precedes it in the one log."""
    fake = FakeTensorRT("8.6.1", dla_cores=1)
    build(fake, tiny_onnx, tmp_path, precision="fp16", dla_core=0, workspace_mib=64, timing_cache=tmp_path / "c")
    settings = ["set_flag", "set_memory_pool_limit", "layer.precision", "config.DLA_core",
                "config.default_device_type", "set_timing_cache"]
    assert all(fake.before(kind, "build_serialized_network") for kind in settings)
    from .fake_trt import FakeMisuse

    with pytest.raises(FakeMisuse, match="set_flag after build_serialized_network"):
        fake.config.set_flag(fake.BuilderFlag.FP16)  # what a late setting would do: the stand-in refuses it


def test_dla_fp32_becomes_fp16_as_trtexec_and_pools_by_trtexec_names(tiny_onnx, tmp_path):
    from tdm_edge.engine.versions import parse_memory_pools

    fake = FakeTensorRT("10.3.0", dla_cores=2)
    pools = parse_memory_pools("workspace:1024,dlaSRAM:0.5M,dlaLocalDRAM:1G,dlaGlobalDRAM:512K")
    report = build(fake, tiny_onnx, tmp_path, precision="fp32", dla_core=1, memory_pools=pools)
    assert report.precision == "fp16" and ("FP16",) in fake.names("set_flag")
    assert report.notes == ["--dla: DLA runs fp16 or int8, so this fp32 build uses fp16 (as trtexec --useDLACore "
                            "does)"]
    assert fake.names("set_memory_pool_limit") == [("WORKSPACE", 1 << 30), ("DLA_MANAGED_SRAM", 1 << 19),
                                                   ("DLA_LOCAL_DRAM", 1 << 30), ("DLA_GLOBAL_DRAM", 1 << 19)]
    with pytest.raises(UsageError, match="unknown pool 'sram'; trtexec's names: workspace, dlaSRAM"):
        parse_memory_pools("sram:1")
    with pytest.raises(UsageError, match="DLA runs fp16 or int8.*export --precision fp16"):
        build(FakeTensorRT("11.0.0.114", dla_cores=1), tiny_onnx, tmp_path, dla_core=0)


def test_strongly_typed_on_10_and_the_11_refusal_names_the_fix(tmp_path, tiny_onnx):
    fake = FakeTensorRT("10.3.0")
    half = write_onnx(tmp_path / "h.onnx", dtype=np.float16)
    report = build(fake, half, tmp_path, strongly_typed=True)
    assert fake.names("create_network") == [(1 << 1,)]  # STRONGLY_TYPED (10.x value 1)
    assert report.precision == "fp16" and fake.names("set_flag") == [] and report.pinned_fp32_layers == 0
    with pytest.raises(UsageError, match="--strongly-typed needs TensorRT 10 or newer"):
        build(FakeTensorRT("8.6.1"), half, tmp_path, strongly_typed=True)
    with pytest.raises(UsageError, match=r"--precision fp16 needs an fp16 ONNX: tdm-edge export --precision fp16"):
        build(FakeTensorRT("11.0.0.114"), tiny_onnx, tmp_path, precision="fp16")


def test_build_prints_tensorrt_errors_and_summarised_warnings(tiny_onnx, tmp_path, capsys, monkeypatch):
    log = [("WARNING", "LayerNorm in fp16 may overflow")] * 3 + [("WARNING", f"w{i}") for i in range(4)] + \
        [("ERROR", "a tactic failed"), ("INFO", "detail")]
    fake = FakeTensorRT("10.3.0", log=log)
    monkeypatch.setattr("tdm_edge.engine.build.import_tensorrt", lambda: fake)
    monkeypatch.setattr("tdm_edge.runners.gpu_info.gpu_info", lambda device=0: GPU)
    assert main(["build", str(tiny_onnx), "-o", str(tmp_path / "m.engine")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "random weights" not in line]
    assert err == ["tdm-edge build: TensorRT error: a tactic failed",
                   "tdm-edge build: TensorRT warning: LayerNorm in fp16 may overflow",
                   "tdm-edge build: TensorRT warning: w0", "tdm-edge build: TensorRT warning: w1",
                   "tdm-edge build: TensorRT gave 7 warning(s), 5 distinct; --verbose prints them all"]
    assert main(["build", str(tiny_onnx), "-o", str(tmp_path / "m.engine"), "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "TensorRT warning: w3" in err and "TensorRT info: detail" in err


def test_layer_norm_is_pinned_to_fp32_on_the_flag_path(tiny_onnx, tmp_path):
    layers = ["MATRIX_MULTIPLY", ("REDUCE", "/blocks.0/norm1/ReduceMean"), ("ELEMENTWISE", "/blocks.0/norm1/Pow"),
              ("UNARY", "/blocks.0/norm1/Sqrt"), ("SHAPE", "/blocks.0/norm1/Shape"),  # shape work: left alone
              ("ELEMENTWISE", "/blocks.0/attn/Mul"), ("REDUCE", "/norm/ReduceMean"), "TOPK"]
    fake = FakeTensorRT("10.3.0", layers=layers)
    report = build(fake, tiny_onnx, tmp_path, precision="fp16")
    pinned = [layer.name or layer.type.name for layer in fake.network.layers if layer._precision == fake.float32]
    assert pinned == ["/blocks.0/norm1/ReduceMean", "/blocks.0/norm1/Pow", "/blocks.0/norm1/Sqrt", "/norm/ReduceMean",
                      "TOPK"] and report.pinned_fp32_layers == 5
    fake = FakeTensorRT("10.3.0", layers=layers)
    build(fake, tiny_onnx, tmp_path, precision="fp32")  # fp32: nothing to pin
    assert fake.names("layer.precision") == []
