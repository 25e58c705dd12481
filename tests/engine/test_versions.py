"""The version gates decide which TensorRT API path each version gets."""

import pytest

from tdm_edge.engine import versions
from tdm_edge.errors import UsageError
from tdm_edge.lint.trt_ops import TRT_VERSIONS


@pytest.mark.parametrize("version, gen", [("8.5.2.2", "8.5"), ("8.6.1", "8.6"), ("8.6", "8.6"), ("10.0.1", "10"),
                                          ("10.3.0.26", "10"), ("10.7.0.post1", "10"), ("11.0.0.114", "11"),
                                          ("11.4.0.106", "11")])
def test_generation_names_are_the_lints(version, gen):
    assert versions.generation(version) == gen
    assert gen in TRT_VERSIONS


@pytest.mark.parametrize("version", ["8.4.3", "7.2.3", "9.2.0", "12.0", "ten"])
def test_unknown_versions_are_one_clear_error(version):
    with pytest.raises(UsageError, match="not supported|not a TensorRT version"):
        versions.generation(version)


@pytest.mark.parametrize("version, flags", [("8.5.2", ("EXPLICIT_BATCH",)), ("8.6.1", ("EXPLICIT_BATCH",)),
                                            ("10.3.0", ()), ("11.0.0", ("STRONGLY_TYPED",))])
def test_network_flags(version, flags):
    assert versions.network_flags(version) == flags


@pytest.mark.parametrize("version", ["8.5.2", "8.6.1", "10.3.0"])
def test_weakly_typed_versions_select_precision_with_builder_flags(version):
    assert versions.builder_flags(version, "fp32") == ()
    assert versions.builder_flags(version, "fp16") == ("FP16", "OBEY_PRECISION_CONSTRAINTS")
    assert versions.builder_flags(version, "int8") == ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS")
    assert versions.pins_selection_fp32(version, "fp16") and not versions.pins_selection_fp32(version, "fp32")
    assert not versions.strongly_typed(version)


@pytest.mark.parametrize("precision", versions.PRECISIONS)
def test_tensorrt_11_has_no_precision_flags(precision):
    assert versions.strongly_typed("11.0.0.114")
    assert versions.builder_flags("11.0.0.114", precision) == ()
    assert not versions.pins_selection_fp32("11.0.0.114", precision)


def test_unknown_precision():
    with pytest.raises(UsageError, match="unknown precision 'bf16'"):
        versions.builder_flags("10.3.0", "bf16")


def test_precision_must_match_the_onnx_on_11_only():
    versions.precision_from_onnx("11.0", "fp16", "fp16")
    versions.precision_from_onnx("10.3", "fp16", "fp32")  # weakly typed: the builder flag lowers it
    with pytest.raises(UsageError, match="strongly typed.*ONNX's \\(fp32\\).*--precision fp16 needs an fp16 ONNX"):
        versions.precision_from_onnx("11.0", "fp16", "fp32")
    with pytest.raises(UsageError, match="Q/DQ"):
        versions.precision_from_onnx("11.0", "int8", "fp16")
    with pytest.raises(UsageError, match="needs a Q/DQ ONNX"):
        versions.precision_from_onnx("8.6.1", "int8", "fp32")
    versions.precision_from_onnx("8.6.1", "int8", "int8")


@pytest.mark.parametrize("version", ["8.5.2.2", "8.6.1", "10.0.1", "10.3.0.26", "10.15.1.29", "10.16.1.11",
                                     "11.0.0.114", "11.4.0.106"])
def test_one_notion_of_which_tensorrt(version):
    """The builder's gates and the lint (tdm-edge check --trt) name the same release family for a version."""
    from tdm_edge.lint.trt_ops import lint_target, parse_target

    target = parse_target(lint_target(version))
    gen = versions.generation(version)
    assert target.first[0] == int(gen.split(".")[0]) and (gen not in ("8.5", "8.6") or target.name == gen)


def test_backend_versions_name_the_software_and_the_gpu(monkeypatch):
    import sys
    import types

    from tdm_edge.runners import gpu_info

    monkeypatch.setattr(gpu_info, "gpu_info", lambda device=0: ("FakeGPU Orin", "8.7"))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0.30"))
    trt = versions.backend_versions("trt")
    assert trt["tensorrt"] == "10.3.0.30" and trt["gpu"] == {"name": "FakeGPU Orin", "compute_capability": "8.7"}
    from importlib import metadata

    assert trt["cuda_python"] == metadata.version("cuda-bindings") and trt["pycuda"] is None
    assert versions.backend_versions("ort")["onnxruntime"] == metadata.version("onnxruntime")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed
    assert versions.backend_versions("trt")["tensorrt"] is None


def test_gpu_info_from_the_driver_without_a_binding():
    """libcuda through ctypes: a stand-in driver library answers as the real one would; none gives "unknown"."""
    import ctypes

    from tdm_edge.runners.gpu_info import gpu_info

    class StandInLibcuda:  # the four driver calls gpu_info makes, with the driver's out-parameter convention
        def cuInit(self, flags):
            return 0

        def cuDeviceGet(self, out, ordinal):
            ctypes.cast(out, ctypes.POINTER(ctypes.c_int))[0] = ordinal
            return 0

        def cuDeviceGetName(self, buf, size, dev):
            ctypes.memmove(buf, b"Orin\0", 5)
            return 0

        def cuDeviceGetAttribute(self, out, attr, dev):
            ctypes.cast(out, ctypes.POINTER(ctypes.c_int))[0] = {75: 8, 76: 7}[attr]
            return 0

    assert gpu_info(0, StandInLibcuda()) == ("Orin", "8.7")
    failing = StandInLibcuda()
    failing.cuInit = lambda flags: 100  # CUDA_ERROR_NO_DEVICE
    assert gpu_info(0, failing) == ("unknown", "unknown")
