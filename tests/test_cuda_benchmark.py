"""benchmarks/cuda_latency.py on a machine without a GPU: one line, exit 2 (its GPU run is not a unit test)."""

import importlib.util
from pathlib import Path

import pytest
import torch


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_without_a_gpu_one_line_exit_2(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "cuda_latency.py"
    spec = importlib.util.spec_from_file_location("cuda_latency", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--batches", "1"]) == 2
    assert capsys.readouterr().err == "cuda_latency: needs a CUDA GPU (torch.cuda.is_available() is False here)\n"
