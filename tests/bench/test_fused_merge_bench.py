"""benchmarks/fused_merge.py without a GPU: it measures nothing and says so; its report table from a result."""

import importlib.util
import sys
from pathlib import Path

import pytest


def _fused_bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fused_merge.py"
    spec = importlib.util.spec_from_file_location("fused_merge", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fused_merge_benchmark_measures_nothing_without_a_gpu(capsys):
    fused = _fused_bench()
    if fused.torch.cuda.is_available():
        pytest.skip("a GPU is present: the benchmark would run")
    assert fused.main(["--rounds", "1"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    table = fused.markdown({"device": "FakeGPU", "torch": "2", "cuda": "12", "equality": [
        {"n_in": 197, "dtype": "float16", "max_abs": 3e-3, "limit": 1e-2, "rows_over_limit": 1, "rows": 1112}],
        "stages": [{"n_in": 197, "batch": 1, "decomposed/fused": 6.25, "decomposed_graph/fused_graph": 2.5}],
        "end_to_end": [{"batch": 1, "bat_fused/ideal": 1.031, "bat/ideal": 1.2, "unpruned/bat_fused": 1.5}]})
    assert "| 197 | float16 | 0.003 | 0.01 | 1/1112 |" in table and "| 197 | 1 | 6.25x | 2.50x |" in table
    assert "| 1 | 1.031 | 1.200 | 1.50x |" in table
    assert "decoupleKernel" not in table  # no kernel profile in the result: no kernel table


def test_per_kernel_times_from_a_profile():
    """Profiler rows (mangled kernel names, total device µs over the calls) -> µs per stage call of each kernel."""
    fused = _fused_bench()
    totals = [("_ZN3tdm50_GLOBAL__N__5d49da61similarityKernelIfEEvNS_8BatSizesEPKT_S5_Pci", 350.0),
              ("_ZN3tdm50_GLOBAL__N__5d49da61similarityKernelI6__halfEEvNS_8BatSizesE", 50.0),
              ("_ZN3tdm50_GLOBAL__N__5d49da61decoupleKernelIfEEv", 25.0), ("void at::native::elementwise", 999.0)]
    us = fused.per_kernel_us(totals, calls=50)
    assert us == {"decoupleKernel": 0.5, "similarityKernel": 8.0, "rowsKernel": 0.0, "selectionKernel": 0.0,
                  "gridPhaseKernel": 0.0}
    table = fused.markdown({"device": "FakeGPU", "torch": "2", "cuda": "12", "equality": [], "stages": [],
                            "end_to_end": [], "kernels": [{"n_in": 197, "batch": 1, "dtype": "float32", "us": us}]})
    assert "| 197 | 1 | 0.5 | 8.0 | 0.0 | 0.0 | 0.0 | 8.5 |" in table


def _kernel_model():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "kernel_model.py"
    spec = importlib.util.spec_from_file_location("kernel_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernel_model"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_docs_quote_the_performance_model_as_it_computes():
    """docs/kernel.md's two tables are benchmarks/kernel_model.py's output for DeiT-S stage 1 (no drift), and the
    model's tile count is the kernel's launch arithmetic (kTile 8): ceil(69/8)^2 + ceil(58/8)^2 = 81 + 64 tiles."""
    model = _kernel_model()
    s = model.Sizes(197, 384, 138, 15, 15, 5)
    similarity = model.kernels(s)[1]
    assert similarity.warps == 145 * 2 + 69 + 69  # 145 tiles of 2 warps, a warp per norm
    docs = (Path(__file__).resolve().parents[2] / "docs" / "kernel.md").read_text()
    orin, h100 = model.ORIN.name, model.H100.name
    rows = model.table(s) + model.ratios(s, {orin: (3.0, 5.0, 10.0), h100: (2.0, 3.0)}, {orin: 1.5, h100: 1.0})
    missing = [row for row in rows if row not in docs]
    assert not missing, f"docs/kernel.md lacks: {missing[:2]}"
