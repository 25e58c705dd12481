"""Every TensorRT name the engine and runner code uses exists in the real bindings of each version it is used for.

The names come from the source (``ast``), not from a hand list:
- every ``trt.X.Y`` chain written in the code, and every method or property used on a TensorRT object (recognised
  by the variable it is held in: ``builder``, ``config``, ``engine``, ``context``, ...; :data:`OBJECTS`), must exist
  in every version that reaches it: all versions, or, inside ``if versions.GATE(version, ...):``, the versions for
  which that gate of ``tdm_edge.engine.versions`` is true (for some precision);
- names picked by a gate's return value (``getattr(trt.BuilderFlag, name)``) are checked per version from the
  gates themselves.
The API surfaces come from the real bindings wheels (:mod:`.trt_api`); without the registry the test skips.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import tdm_edge
from tdm_edge.engine import versions

from . import trt_api
from .fake_trt import COMMON_ENUMS, ENUMS, FakeTensorRT

PACKAGE = Path(tdm_edge.__file__).parent
SOURCES = sorted(PACKAGE.glob("engine/*.py")) + [PACKAGE / "runners" / name for name in ("tensorrt.py", "trt_env.py")]

# variable or attribute name -> the TensorRT class of the object it holds (the code keeps to these names)
OBJECTS = {"builder": "Builder", "network": "INetworkDefinition", "config": "IBuilderConfig", "parser": "OnnxParser",
           "error": "ParserError", "layer": "ILayer", "cache": "ITimingCache", "runtime": "Runtime",
           "engine": "ICudaEngine", "context": "IExecutionContext"}

VERSIONS = {gen: trt_api.WHEELS[gen][1] for gen in trt_api.WHEELS}


def _chain(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def _gate(node: ast.AST) -> str | None:
    """``versions.NAME`` when ``node`` is an ``if versions.NAME(...)`` test, else ``None``."""
    if isinstance(node, ast.Call):
        chain = _chain(node.func)
        if chain and len(chain) == 2 and chain[0] == "versions":
            return chain[1]
    return None


def reached(gate: str | None, version: str) -> bool:
    """Whether code behind ``if versions.<gate>(version, ...)`` runs on ``version`` for some precision."""
    if gate is None:
        return True
    func = getattr(versions, gate)
    if len(inspect.signature(func).parameters) == 1:
        return bool(func(version))
    return any(func(version, p) for p in versions.PRECISIONS)


def used_names() -> tuple[set[tuple[str, str | None]], set[tuple[str, str, str | None]]]:
    """In :data:`SOURCES`: {(``trt.`` chain without ``trt.``, gate)} and {(class, member, gate)} used on TensorRT
    objects, where gate is the ``versions`` function of the innermost ``if versions.X(...)`` around the use."""
    chains, members = set(), set()

    def visit(node: ast.AST, gate: str | None, inner: set[int]) -> None:
        if isinstance(node, ast.If) and _gate(node.test):
            for child in node.body:
                visit(child, _gate(node.test), inner)
            for child in [node.test, *node.orelse]:
                visit(child, gate, inner)
            return
        if isinstance(node, ast.Attribute):
            if id(node) not in inner:  # outermost attribute of a chain
                chain = _chain(node)
                if chain and chain[0] == "trt":
                    chains.add((".".join(chain[1:]), gate))
            holder = node.value
            name = holder.id if isinstance(holder, ast.Name) else getattr(holder, "attr", None)
            if name is not None and name.lstrip("_") in OBJECTS:
                members.add((OBJECTS[name.lstrip("_")], node.attr, gate))
        for child in ast.iter_child_nodes(node):
            visit(child, gate, inner)

    for path in SOURCES:
        tree = ast.parse(path.read_text())
        visit(tree, None, {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)})
    return chains, members


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def surface(request):
    try:
        return request.param, trt_api.api(request.param)
    except trt_api.Unavailable as err:  # visible: a warning in the summary, and the skip's reason with -ra
        import warnings

        warnings.warn(f"TensorRT {VERSIONS[request.param]} bindings not readable here, so FakeTensorRT's names and "
                      f"signatures were not checked against them: {err}")
        pytest.skip(f"TensorRT {VERSIONS[request.param]} bindings not readable here: {err}")


def test_the_sources_use_tensorrt():
    chains, members = used_names()
    # the scan finds what the code demonstrably contains, so an empty scan cannot pass for a clean one
    assert {("Builder", None), ("BuilderFlag.GPU_FALLBACK", None), ("ILogger.Severity.WARNING", None),
            ("float32", "pins_selection_fp32")} <= chains
    assert {("IExecutionContext", "execute_async_v3", None), ("IBuilderConfig", "set_flag", None),
            ("ParserError", "desc", None), ("ILayer", "precision", "pins_selection_fp32")} <= members
    assert not reached("pins_selection_fp32", "11.0") and reached("pins_selection_fp32", "8.6.1")


def test_every_name_reached_exists(surface):
    gen, api = surface
    version = VERSIONS[gen]
    chains, members = used_names()
    assert sorted(c for c, gate in chains if reached(gate, version) and not trt_api.has(api, c)) == []
    assert sorted(f"{c}.{m}" for c, m, gate in members
                  if reached(gate, version) and not trt_api.member(api, c, m)) == []


def test_gated_names_exist_in_their_version(surface):
    gen, api = surface
    version = VERSIONS[gen]
    for flag in versions.network_flags(version):
        assert trt_api.has(api, f"NetworkDefinitionCreationFlag.{flag}"), flag
    if gen != "8.6":  # --strongly-typed (refused on 8.x)
        for flag in versions.network_flags(version, True):
            assert trt_api.has(api, f"NetworkDefinitionCreationFlag.{flag}"), flag
        assert all(versions.builder_flags(version, p, True) == () for p in versions.PRECISIONS)
    for pool in versions.MEMORY_POOLS.values():  # --mem-pool-size: trtexec's names -> MemoryPoolType
        assert trt_api.has(api, f"MemoryPoolType.{pool}"), pool
    assert trt_api.kind(api, "Runtime", "DLA_core") == "property"  # set before deserialising
    from tdm_edge.engine.build import NORM_LAYER_TYPES

    assert [t for t in NORM_LAYER_TYPES if not trt_api.has(api, f"LayerType.{t}")] == []  # LayerNorm pinned fp32
    for precision in versions.PRECISIONS:
        for flag in versions.builder_flags(version, precision):
            assert trt_api.has(api, f"BuilderFlag.{flag}"), (precision, flag)


def test_the_gates_are_needed(surface):
    """The names the gates keep from a version are really missing there (else a gate would be pointless)."""
    gen, api = surface
    if gen == "11":
        assert not any(trt_api.has(api, f"BuilderFlag.{f}") for f in ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"))
        assert not trt_api.has(api, "NetworkDefinitionCreationFlag.EXPLICIT_BATCH")
    if gen == "8.6":
        assert not trt_api.has(api, "NetworkDefinitionCreationFlag.STRONGLY_TYPED")
    if gen != "8.6":  # the binding API the runner never uses
        assert not trt_api.member(api, "IExecutionContext", "execute_async_v2")
    assert trt_api.member(api, "IExecutionContext", "execute_async_v3")  # 8.5 on: one runner path


def test_logger_severity_order(surface):
    """The builder's logger keeps messages with ``int(severity) <= WARNING``: that needs this order."""
    gen, api = surface
    values = api["values:ILogger.Severity"]
    order = ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"]
    assert [values[name] for name in order] == sorted(values[name] for name in order)
    assert len(set(values.values())) == len(values)


def test_fake_tensorrt_names_are_real(surface):
    """FakeTensorRT's per-version enums (which make gating mistakes fail on CPU) hold only real names."""
    gen, api = surface
    for enum, members in {**ENUMS["8" if gen == "8.6" else gen], **COMMON_ENUMS}.items():
        assert [m for m in members if not trt_api.has(api, f"{enum}.{m}")] == [], enum
    fake = FakeTensorRT(VERSIONS[gen])
    real = api["values:NetworkDefinitionCreationFlag"]  # test_build asserts create_network's bit mask with these
    assert {m.name: m.value for m in fake.NetworkDefinitionCreationFlag} == {
        m: real[m] for m in ENUMS["8" if gen == "8.6" else gen]["NetworkDefinitionCreationFlag"]}
    assert len(fake.classes) == 10
    for real, cls in fake.classes.items():  # the fake's methods and class attributes, less its own helpers
        public = [n for n in vars(cls) if not n.startswith("_")]
        assert [n for n in public if not trt_api.member(api, real, n)] == [], real


def test_fake_tensorrt_signatures_are_real(surface):
    """Each FakeTensorRT method takes the parameters of the real one (names and count, from the pybind11
    docstrings of the wheels), and what is a property there is a property here."""
    import inspect as _inspect

    gen, api = surface
    fake = FakeTensorRT(VERSIONS[gen])
    problems = []
    checked = 0
    for real, cls in fake.classes.items():
        for name, raw in vars(cls).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(raw, property) or _inspect.isdatadescriptor(raw):
                if trt_api.kind(api, real, name) != "property":
                    problems.append(f"{real}.{name} is a property here, {trt_api.kind(api, real, name)} there")
                continue
            if not callable(raw) or _inspect.isclass(raw):
                continue
            params = list(_inspect.signature(raw).parameters)[1:]  # without self
            overloads = trt_api.signatures(api, real, name)
            if name == "__init__" and not overloads:  # not constructible from Python: only TensorRT makes them
                continue
            checked += 1
            if not trt_api.accepts(overloads, params):
                problems.append(f"{real}.{name}{tuple(params)}: the real one takes {overloads}")
    assert checked >= 18 and problems == []
