"""benchmarks/fused_merge.py without a GPU: it measures nothing and says so; its report table from a result."""

import importlib.util
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
