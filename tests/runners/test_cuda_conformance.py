"""Every cuda-python call the TensorRT runner makes exists in the real ``cuda.bindings.runtime`` with a signature
that accepts the arguments it is given, and FakeCudart mirrors those signatures (names collected with ``ast``)."""

from __future__ import annotations

import ast
import inspect
import warnings
from pathlib import Path

import pytest

import tdm_edge

from .fake_cuda import FakeCudart

SOURCES = [Path(tdm_edge.__file__).parent / "runners" / name for name in ("tensorrt.py", "cuda_rt.py")]


def _is_rt(node: ast.AST) -> bool:
    """``rt`` or ``self.rt``: the cuda-python runtime module in the sources."""
    return (isinstance(node, ast.Name) and node.id == "rt") or (
        isinstance(node, ast.Attribute) and node.attr == "rt" and isinstance(node.value, ast.Name))


def uses() -> tuple[dict[str, set[int]], set[str]]:
    """({function: argument counts it is called with}, {enum chains}) for names rooted at ``rt`` / ``self.rt``."""
    calls, chains = {}, set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_rt(node.func.value):
                calls.setdefault(node.func.attr, set()).add(len(node.args))
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and _is_rt(node.value.value):
                chains.add(f"{node.value.attr}.{node.attr}")
            # frees are passed as values (("cudaFree", rt.cudaFree, ptr), or getattr(rt, call) with the call's
            # name recorded as ("cudaFree", ptr)) and called with one argument
            elif isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[1], ast.Attribute) \
                    and _is_rt(node.elts[1].value):
                calls.setdefault(node.elts[1].attr, set()).add(1)
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Constant) \
                    and str(node.elts[0].value).startswith("cudaFree"):
                calls.setdefault(node.elts[0].value, set()).add(1)
    return calls, chains


def test_the_scan_finds_the_runner_s_calls():
    """Without the real bindings too: the scan sees what the sources demonstrably contain (an empty scan would
    pass every check below)."""
    calls, chains = uses()
    assert {"cudaMalloc", "cudaMallocHost", "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaGraphInstantiate",
            "cudaFree", "cudaFreeHost", "cudaStreamBeginCapture", "cudaDriverGetVersion"} <= set(calls)
    assert {"cudaMemcpyKind.cudaMemcpyHostToDevice", "cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal"} <= chains


@pytest.fixture(scope="module")
def rt():
    try:
        import cuda.bindings.runtime as runtime
    except ImportError:
        warnings.warn("cuda-python (cuda-bindings) is not installed: the FakeCudart signature checks did not run")
        pytest.skip("cuda-python (cuda-bindings) is not installed")
    return runtime


def test_calls_exist_with_matching_signatures(rt):
    calls, chains = uses()
    for name, counts in calls.items():
        func = getattr(rt, name)  # AttributeError names a missing function
        for n in counts:
            inspect.signature(func).bind(*range(n))  # TypeError if the real call takes other arguments
    for chain in chains:
        enum, member = chain.split(".")
        assert hasattr(getattr(rt, enum), member), chain


def test_fake_cudart_mirrors_the_real_signatures(rt):
    calls, chains = uses()
    fake = FakeCudart()
    for name in calls:
        real = [p.name for p in inspect.signature(getattr(rt, name)).parameters.values()]
        assert len(inspect.signature(getattr(fake, name)).parameters) == len(real), (name, real)
    for chain in chains:
        enum, member = chain.split(".")
        assert hasattr(getattr(fake, enum), member), chain


def test_cuda_python_12_instantiates_graphs_with_flags(rt):
    """The real binding's cudaGraphInstantiate takes (graph, flags): CudaPython uses graphs with it."""
    from tdm_edge.runners.cuda_rt import graph_instantiate_takes_flags

    from .fake_cuda import FakeCudart11

    assert graph_instantiate_takes_flags(rt) and not graph_instantiate_takes_flags(FakeCudart11())
