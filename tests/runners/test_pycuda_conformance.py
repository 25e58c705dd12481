"""Every pycuda name the TensorRT runner's pycuda path uses exists in pycuda's own source, called with arguments
its bindings accept, and FakePyCuda has the same names and parameter lists.

pycuda installs from source only (it compiles against a CUDA toolkit), so instead of importing it the test reads
its sdist from the registry (``pip download --no-binary :all: pycuda``, cached) and parses the boost.python
bindings in ``src/wrapper/wrap_cudadrv.cpp`` (``py::def``, ``py::class_``, ``.def``, ``DEF_SIMPLE_METHOD``,
``add_property``, ``py::arg``). Without the registry the checks skip with a visible warning.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest

import tdm_edge

from .fake_pycuda import FakePyCuda

SOURCE = Path(tdm_edge.__file__).parent / "runners" / "cuda_pycuda.py"
PYCUDA = "2026.1"  # the pycuda whose source is read (newest on the registry when written)
# variable or attribute name in cuda_pycuda.py -> the pycuda class of the object it holds
OBJECTS = {"dev": "Device", "context": "Context", "_context": "Context", "_stream": "Stream",
           "a": ("HostAllocation", "DeviceAllocation")}  # _allocations holds both kinds


def _cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tdm-edge" / "pycuda"


def _wrapper_source() -> str:
    """``src/wrapper/wrap_cudadrv.cpp`` of the pycuda :data:`PYCUDA` sdist (downloaded once)."""
    folder = _cache()
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(f"pycuda-{PYCUDA}.tar.gz"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
               "--quiet", "--disable-pip-version-check", "--retries", "1", "--timeout", "15", "--dest", str(folder),
               f"pycuda=={PYCUDA}"]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            run = None
        found = sorted(folder.glob(f"pycuda-{PYCUDA}.tar.gz"))
        if not found:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1] if run else "timed out"
            raise LookupError(f"cannot download the pycuda sdist: {last}")
    with tarfile.open(found[-1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("src/wrapper/wrap_cudadrv.cpp"))
        return tar.extractfile(member).read().decode()


_ARG = re.compile(r'py::args?\(\s*((?:"\w+"\s*,?\s*)+)\)\s*(=)?')


def _params(text: str) -> list[tuple[str, bool]] | None:
    """``[(name, has_default)]`` from the ``py::arg(...)`` / ``py::args(...)`` in one binding; None without any."""
    found = []
    for match in _ARG.finditer(text):
        names = re.findall(r'"(\w+)"', match.group(1))
        found += [(n, False) for n in names[:-1]] + [(names[-1], bool(match.group(2)))]
    return [p for p in found if p[0] != "self"] or None


def _call_text(source: str, start: int) -> str:
    """The text of the parenthesised call starting at ``source[start] == "("``."""
    depth = 0
    for i in range(start, len(source)):
        depth += {"(": 1, ")": -1}.get(source[i], 0)
        if depth == 0:
            return source[start:i + 1]
    return source[start:]


def parse_bindings(source: str) -> dict[str, dict]:
    """``{"": {function: params}, "Class": {member: params}}`` from pycuda's boost.python wrapper source."""
    api: dict[str, dict] = {"": {}}
    current = None
    pattern = re.compile(r'py::class_<[^;]*?>\s*(?:\w+)?\(\s*"(\w+)"|py::def\(\s*"(\w+)"|DEF_SIMPLE_FUNCTION\((\w+)\)'
                         r'|DECLARE_EXC\((\w+)|\.def\(\s*"(\w+)"|\.DEF_SIMPLE_METHOD(?:_WITH_ARGS)?\((\w+)'
                         r'|\.add_property\(\s*"(\w+)"|\.def_read(?:only|write)\(\s*"(\w+)"'
                         r'|py::scope\(\)\.attr\("(\w+)"\)\s*=\s*wrp|py::init<[^>]*>\(')
    for match in pattern.finditer(source):
        cls, func, simple, exc, method, smethod, prop, member, alias = match.groups()
        text = match.group(0)
        if cls:
            current = api.setdefault(cls, {})
        elif func or simple or exc:
            api[""][func or simple or exc] = _params(_call_text(source, source.find("(", match.start())))
            if func or simple:
                current = None
        elif (method or smethod or prop or member) and current is not None:
            current[method or smethod or prop or member] = _params(
                _call_text(source, source.find("(", match.start() + 1))) if method else None
        elif alias and current is not None:
            api[alias] = current
        elif text.startswith("py::init") and current is not None:
            current["__init__"] = _params(_call_text(source, match.end() - 1))
    for name, members in list(api.items()):
        if name:
            api[""].setdefault(name, members.get("__init__"))
    return api


@pytest.fixture(scope="module")
def pycuda_api():
    try:
        return parse_bindings(_wrapper_source())
    except (LookupError, OSError, tarfile.TarError, StopIteration) as err:
        warnings.warn(f"pycuda's source is not readable here, the pycuda name checks did not run: {err}")
        pytest.skip(f"pycuda's source not readable here: {err}")


def used_names() -> tuple[set[str], set[tuple[str, str]], dict[str, set[int]]]:
    """In cuda_pycuda.py: module chains (``Context.pop``), (class, member) uses on held objects, and the argument
    counts each module function is called with through ``self._call(what, self.cuda.F, *args)``."""
    chains, members, counts = set(), set(), {}
    tree = ast.parse(SOURCE.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            holder = node.value
            if isinstance(holder, ast.Attribute) and holder.attr == "cuda" or \
                    isinstance(holder, ast.Name) and holder.id == "cuda":
                chains.add(node.attr)
            elif isinstance(holder, ast.Attribute) and isinstance(holder.value, (ast.Name, ast.Attribute)) and \
                    getattr(holder.value, "attr", getattr(holder.value, "id", None)) == "cuda":
                chains.add(f"{holder.attr}.{node.attr}")
            if isinstance(holder, ast.Call) and getattr(holder.func, "attr", None) in ("Device", "Stream"):
                members.add((holder.func.attr, node.attr))  # cuda.Device(n).retain_primary_context
            name = holder.id if isinstance(holder, ast.Name) else getattr(holder, "attr", None)
            if name in OBJECTS:
                for cls in (OBJECTS[name] if isinstance(OBJECTS[name], tuple) else (OBJECTS[name],)):
                    members.add((cls, node.attr))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_call":
            target = node.args[1]
            if isinstance(target, ast.Attribute) and getattr(target.value, "attr", None) == "cuda":
                counts.setdefault(target.attr, set()).add(len(node.args) - 2)
    return chains, members, counts


def test_the_scan_finds_the_pycuda_path():
    chains, members, counts = used_names()
    assert {"init", "Device", "Stream", "pagelocked_empty", "mem_alloc", "memcpy_htod_async", "memcpy_dtoh_async",
            "Error", "Context.pop"} <= chains
    assert {("Device", "compute_capability"), ("Device", "retain_primary_context"), ("Context", "push"),
            ("Context", "detach"), ("Stream", "synchronize"), ("Stream", "handle"), ("HostAllocation", "free"),
            ("DeviceAllocation", "free")} <= members
    assert counts["memcpy_htod_async"] == {3} and counts["pagelocked_empty"] == {2}


def test_every_pycuda_name_used_exists(pycuda_api):
    chains, members, _ = used_names()
    module = pycuda_api[""]
    missing = [c for c in chains if c.split(".")[0] not in module
               or ("." in c and c.split(".")[1] not in pycuda_api.get(c.split(".")[0], {}))]
    assert missing == []
    assert sorted(f"{c}.{m}" for c, m in members if m not in pycuda_api.get(c, {})) == []


def test_pycuda_calls_pass_arguments_the_bindings_accept(pycuda_api):
    _, _, counts = used_names()
    for name, ns in counts.items():
        params = pycuda_api[""][name]
        if params is None:  # bound without py::arg: one positional argument per C++ parameter (mem_alloc)
            continue
        required = sum(1 for _, default in params if not default)
        for n in ns:
            assert required <= n <= len(params), (name, n, params)


def test_fake_pycuda_has_the_real_names_and_parameters(pycuda_api):
    fake = FakePyCuda()
    module = pycuda_api[""]
    public = [n for n in vars(fake) if not n.startswith("_") and n not in ("fail", "calls", "live", "queue",
                                                                            "contexts", "pushed")]
    public += [n for n in vars(FakePyCuda) if not n.startswith("_") and n != "enqueue"]
    assert sorted(n for n in public if n not in module) == []
    for name in ("init", "pagelocked_empty", "memcpy_htod_async", "memcpy_dtoh_async"):
        fake_params = list(inspect.signature(getattr(fake, name)).parameters)
        assert fake_params == [p for p, _ in module[name]], name
    for cls in ("Device", "Context", "Stream", "HostAllocation", "DeviceAllocation"):
        fake_members = [n for n in vars(getattr(fake, cls)) if not n.startswith("_")]
        assert [m for m in fake_members if m not in pycuda_api[cls]] == [], cls
    assert list(inspect.signature(fake.Stream).parameters) == [p for p, _ in pycuda_api["Stream"]["__init__"]]
