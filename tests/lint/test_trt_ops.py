"""The TensorRT version data shared by the lint and the engine builder: plain Python, no onnx import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tdm_edge.lint import trt_ops


def test_trt_ops_imports_without_onnx():
    code = "import sys, tdm_edge.lint.trt_ops; print(sorted(m for m in ('onnx', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_parse_target_ranges():
    assert trt_ops.parse_target("10") == trt_ops.Target("10", (10, 0), (10, trt_ops.LATEST_10X_MINOR))
    assert trt_ops.parse_target("10.3") == trt_ops.Target("10.3", (10, 3), (10, 3))
    assert trt_ops.parse_target("8.6") == trt_ops.Target("8.6", (8, 6), (8, 6))
    assert trt_ops.parse_target("11") == trt_ops.Target("11", (11, 0), (11, 0))
    for bad in ("9", "10.16", "8.4", "", "10.x"):
        with pytest.raises(ValueError, match="unknown TensorRT version"):
            trt_ops.parse_target(bad)


def test_within_is_range_overlap():
    every_10x, ten_zero = trt_ops.parse_target("10"), trt_ops.parse_target("10.0")
    assert every_10x.within(since=(10, 1)) and not ten_zero.within(since=(10, 1))
    assert ten_zero.within(until=(10, 0)) and not trt_ops.parse_target("10.1").within(until=(10, 0))
    assert trt_ops.parse_target("8.5").within(until=(8, 5)) and not trt_ops.parse_target("8.6").within(until=(8, 5))


@pytest.mark.parametrize("installed, target", [("8.5.3.1", "8.5"), ("8.6.1.6", "8.6"), ("10.0.1.6", "10.0"),
                                               ("10.3.0.26", "10.3"), ("10.99.0", "10.15"), ("11.0.0.1", "11")])
def test_lint_target_of_an_installed_tensorrt(installed, target):
    assert trt_ops.lint_target(installed) == target
    trt_ops.parse_target(target)  # always a valid --trt value


@pytest.mark.parametrize("installed", ["8.4.3", "7.2.1", "9.3.0", "abc"])
def test_lint_target_refuses_releases_without_a_table(installed):
    with pytest.raises(ValueError):
        trt_ops.lint_target(installed)


def test_tables_grow_by_release():
    assert "LayerNormalization" not in trt_ops.supported_ops((8, 5)) and "LayerNormalization" in \
        trt_ops.supported_ops((8, 6))
    assert "DeformConv" not in trt_ops.supported_ops((10, 0)) and "DeformConv" in trt_ops.supported_ops((10, 1))
    assert trt_ops.supported_ops((10, 14)) - trt_ops.supported_ops((10, 0)) == {
        "DeformConv", "BlackmanWindow", "HammingWindow", "HannWindow", "STFT", "Attention"}
    assert trt_ops.supported_ops((10, 15)) < trt_ops.supported_ops((11, 0))


def test_importer_type_sees_int64_as_int32_before_10():
    assert trt_ops.importer_type(7, (8, 6)) == "INT32" and trt_ops.importer_type(7, (10, 0)) == "INT64"
    assert trt_ops.importer_type(11, (10, 0)) == "FLOAT" and trt_ops.importer_type(0, (10, 0)) == ""


def test_opset_ceiling_per_release():
    assert trt_ops.opset_range((8, 6)) == (None, 17) and trt_ops.opset_range((10, 0)) == (9, 20)
    assert trt_ops.opset_range((10, 15)) == (9, 24) and trt_ops.opset_range((11, 0)) == (9, 25)
