"""The names the real TensorRT Python bindings bind, read from the ``tensorrt`` bindings wheels (no TensorRT needed).

A bindings wheel holds ``tensorrt_bindings/tensorrt.so`` (pybind11) and an ``__init__.py``. The ``.so`` cannot be
imported without libnvinfer, but it needs only ten C entry points from TensorRT's libraries (TensorRT's C++ API is
all virtual interfaces), none of which runs while the module is imported. So we compile FakeLibnvinfer, a stand-in
that defines those symbols and does nothing, under each library's soname, import the real ``.so`` against it in a
subprocess, and walk ``dir()`` of the module, its classes and their nested classes. The result is each version's
exact API surface (classes, methods, properties, enum values), cached as JSON.

Cache: ``$XDG_CACHE_HOME/tdm-edge/trt-api`` (default ``~/.cache/tdm-edge/trt-api``); the wheels are ~1 MB each.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

# generation -> (registry package, version). 8.6.1 is the only 8.x bindings wheel on the registry (no 8.5);
# 10.3.0 is JetPack 6.1/6.2's TensorRT; 11.0.0.114 is the first 11.x.
WHEELS = {"8.6": ("tensorrt-bindings", "8.6.1"), "10": ("tensorrt-cu12-bindings", "10.3.0"),
          "11": ("tensorrt-cu12-bindings", "11.0.0.114")}

# What tensorrt.so imports from libnvinfer*, libnvonnxparser*, libnvparsers (8.x): C entry points only.
_SYMBOLS = ["createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
            "createNvOnnxParser_INTERNAL", "createNvOnnxParserRefitter_INTERNAL", "getBuilderPluginRegistry",
            "getNvOnnxParserVersion", "getPluginRegistry", "initLibNvInferPlugins", "getInferLibVersion",
            "_ZN11nvuffparser15createUffParserEv", "_ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi",
            "_ZN14nvcaffeparser117createCaffeParserEv", "_ZN14nvcaffeparser123shutdownProtobufLibraryEv"]
_LIBS = ("nvinfer", "nvonnxparser", "nvparsers", "nvinfer_plugin")

_DUMP = r"""
import importlib.util, inspect, json, sys
spec = importlib.util.spec_from_file_location("tensorrt", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
api = {}
def walk(obj, path, depth):
    api[path] = sorted(dir(obj))
    members = getattr(obj, "__members__", None)  # a pybind11 enum: its values too
    if inspect.isclass(obj) and isinstance(members, dict):
        api["values:" + path] = {name: int(value) for name, value in members.items()}
    if inspect.isclass(obj):  # pybind11 signatures: the first lines of each method's docstring
        for name in dir(obj):
            if name.startswith("__") and name != "__init__":
                continue
            raw = inspect.getattr_static(obj, name, None)
            if isinstance(raw, property):
                api["kind:" + path + "." + name] = "property"
            elif callable(raw) and not inspect.isclass(raw):
                api["kind:" + path + "." + name] = "method"
                api["doc:" + path + "." + name] = (getattr(raw, "__doc__", None) or "")[:4000]
    if depth == 0:
        return
    for name in dir(obj):
        if name.startswith("__"):
            continue
        value = getattr(obj, name, None)
        if inspect.isclass(value) and not (path and value is obj):
            walk(value, f"{path}.{name}" if path else name, depth - 1)
walk(module, "", 2)
json.dump(api, sys.stdout)
"""


class Unavailable(RuntimeError):
    """The API could not be read here (no registry, no C compiler); the message is the skip reason."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tdm-edge" / "trt-api"


def _download(package: str, version: str, dest: Path) -> Path:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    stem = f"{package.replace('-', '_')}-{version}-{tag}-"
    found = sorted(dest.glob(stem + "*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "--retries", "1", "--timeout", "15", "--dest", str(dest), f"{package}=={version}"]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"pip download {package}=={version} timed out (registry unreachable?)") from None
        found = sorted(dest.glob(stem + "*.whl"))
        if run.returncode != 0 or not found:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise Unavailable(f"cannot download {package}=={version} for {tag}: {last}")
    return found[0]


def _stubs(major: str, dest: Path, symbols: list[str]) -> Path:
    """FakeLibnvinfer: every symbol a function returning 0, built once per soname."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise Unavailable("no C compiler to build the FakeLibnvinfer stand-in")
    dest.mkdir(parents=True, exist_ok=True)
    source = dest / "fake_libnvinfer.c"
    source.write_text("".join(f"long {s}(void) {{ return 0; }}\n" for s in symbols))
    for lib in _LIBS:
        so = f"lib{lib}.so.{major}"
        subprocess.run([compiler, "-shared", "-fPIC", "-o", str(dest / so), f"-Wl,-soname,{so}", str(source)],
                       check=True, capture_output=True, timeout=60)
    return dest


def _init_names(wheel: zipfile.ZipFile) -> list[str]:
    """Top-level names ``tensorrt/__init__.py`` adds in Python (``nptype``, ``__version__``, ...)."""
    tree = ast.parse(wheel.read("tensorrt_bindings/__init__.py"))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def api(generation: str) -> dict[str, list[str]]:
    """``{"": top-level names, "BuilderFlag": members, "ILogger.Severity": members, ...}`` of a generation, and
    ``{"values:BuilderFlag": {"FP16": 0, ...}}`` for every enum."""
    package, version = WHEELS[generation]
    root = cache_dir()
    cached = root / f"api3-{version}-cp{sys.version_info.major}{sys.version_info.minor}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    root.mkdir(parents=True, exist_ok=True)
    wheel_path = _download(package, version, root / "wheels")
    work = root / f"x-{version}"
    with zipfile.ZipFile(wheel_path) as wheel:
        wheel.extract("tensorrt_bindings/tensorrt.so", work)
        extra = _init_names(wheel)
    major = version.split(".")[0]
    symbols = list(_SYMBOLS)
    for _ in range(20):  # a symbol this list lacks: the loader names it, add it and rebuild
        stubs = _stubs(major, root / f"stubs-{major}", symbols)
        env = dict(os.environ, LD_LIBRARY_PATH=str(stubs))
        run = subprocess.run([sys.executable, "-c", _DUMP, str(work / "tensorrt_bindings" / "tensorrt.so")],
                             capture_output=True, text=True, env=env, timeout=120)
        missing = re.search(r"undefined symbol: (\S+)", run.stderr)
        if run.returncode == 0 or not missing or missing.group(1) in symbols:
            break
        symbols.append(missing.group(1))
    if run.returncode != 0:
        raise Unavailable(f"cannot import the {version} bindings against FakeLibnvinfer: "
                          f"{(run.stderr.strip().splitlines() or ['?'])[-1]}")
    surface = json.loads(run.stdout)
    surface[""] = sorted(set(surface[""]) | set(extra))
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(surface))
    os.replace(tmp, cached)
    shutil.rmtree(work, ignore_errors=True)  # the JSON is what is kept; the wheel stays for a rebuild
    return surface


def has(surface: dict[str, list[str]], chain: str) -> bool:
    """Whether ``"BuilderFlag.FP16"`` (a dotted chain below the module) exists in ``surface``."""
    parts = chain.split(".")
    for i, name in enumerate(parts):
        parent = ".".join(parts[:i])
        if parent not in surface or name not in surface[parent]:
            return False
    return True


def member(surface: dict[str, list[str]], cls: str, name: str) -> bool:
    return name in surface.get(cls, ())


_SIGNATURE = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\) -> ", re.M)


def _split_params(text: str) -> list[str]:
    """Top-level comma split of a pybind11 parameter list (types may hold brackets and commas)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def signatures(surface: dict, cls: str, name: str) -> list[list[tuple[str, bool]]]:
    """Every overload's ``[(parameter, has a default)]`` (without ``self``) of a bound method, from its pybind11
    docstring; ``[]`` for a class pybind11 gives no Python constructor (``__init__``)."""
    doc = surface.get(f"doc:{cls}.{name}", "")
    found = []
    for match in _SIGNATURE.finditer(doc):
        if match.group(1) != name:
            continue
        params = [(p.split(":")[0].split("=")[0].strip(), "=" in p) for p in _split_params(match.group(2))]
        found.append([p for p in params if p[0] not in ("self", "*args", "**kwargs")])
    return found


def accepts(overloads: list[list[tuple[str, bool]]], params: list[str]) -> bool:
    """Whether a stand-in taking ``params`` has the real parameters: the same names in order, leaving out only
    trailing ones the real method gives defaults."""
    return any([n for n, _ in real[:len(params)]] == params and all(d for _, d in real[len(params):])
               for real in overloads)


def kind(surface: dict, cls: str, name: str) -> str | None:
    """"method", "property" or None (not a member, or not recorded)."""
    return surface.get(f"kind:{cls}.{name}")
