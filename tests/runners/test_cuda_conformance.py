"""Every cuda-python call the TensorRT runner makes exists in the real ``cuda.bindings.runtime`` with a signature
that accepts the arguments it is given, and FakeCudart mirrors those signatures (names collected with ``ast``)."""

import ast
import inspect
from pathlib import Path

import pytest

import tdm_edge

from .fake_cuda import FakeCudart

rt = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python (cuda-bindings) is not installed")
SOURCES = [Path(tdm_edge.__file__).parent / "runners" / name for name in ("tensorrt.py", "cuda_rt.py")]


def uses() -> tuple[dict[str, set[int]], set[str]]:
    """({function: argument counts it is called with}, {enum chains}) for names rooted at ``rt``."""
    calls, chains = {}, set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "rt":
                calls.setdefault(node.func.attr, set()).add(len(node.args))
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "rt":
                chains.add(f"{node.value.attr}.{node.attr}")
    # frees are passed as values (("cudaFree", rt.cudaFree, ptr)) and called with one argument
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[1], ast.Attribute) \
                    and isinstance(node.elts[1].value, ast.Name) and node.elts[1].value.id == "rt":
                calls.setdefault(node.elts[1].attr, set()).add(1)
    return calls, chains


def test_calls_exist_with_matching_signatures():
    calls, chains = uses()
    assert {"cudaMalloc", "cudaMemcpyAsync", "cudaGraphInstantiate", "cudaFree", "cudaStreamBeginCapture"} <= set(calls)
    for name, counts in calls.items():
        func = getattr(rt, name)  # AttributeError names a missing function
        for n in counts:
            inspect.signature(func).bind(*range(n))  # TypeError if the real call takes other arguments
    for chain in chains:
        enum, member = chain.split(".")
        assert hasattr(getattr(rt, enum), member), chain


def test_fake_cudart_mirrors_the_real_signatures():
    calls, chains = uses()
    fake = FakeCudart()
    for name in calls:
        real = [p.name for p in inspect.signature(getattr(rt, name)).parameters.values()]
        assert len(inspect.signature(getattr(fake, name)).parameters) == len(real), (name, real)
    for chain in chains:
        enum, member = chain.split(".")
        assert hasattr(getattr(fake, enum), member), chain
