"""The device side's contract, checked statically (runs on Python 3.8 too, without torch).

Every module of tdm_edge is on one side (tdm_edge/sides.py); no device module imports torch, timm, torchvision,
safetensors, onnxsim, onnxscript or a workstation module, at module level or inside a function, except inside the
functions sides.WORKSTATION_ENTRIES names; the device modules parse for Python 3.8 (vermin, when installable). The
commands themselves run with those imports blocked in tests/device/test_commands.py.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tdm_edge import sides

PACKAGE = Path(sides.__file__).resolve().parent


def all_modules():
    """``(module name, path, is_package)`` for every .py file under tdm_edge/."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path, rel.name == "__init__"


def device_modules():
    return [(m, p, pkg) for m, p, pkg in all_modules() if sides.side_of(m) == "device"]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_in(source: str, module: str, is_package: bool):
    """``(line, imported module, qualified name of the enclosing function or None)`` for every import in
    ``source``, relative imports resolved; imports under ``if TYPE_CHECKING:`` and in docstrings left out."""
    package = module if is_package else module.rpartition(".")[0]
    found = []

    def resolve(level: int, name: str | None) -> str:
        base = package.split(".")
        base = base[:len(base) - (level - 1)] if level > 1 else base
        return ".".join(base + ([name] if name else []))

    def visit(node, scope):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, scope)
            return
        qual = ".".join(scope) if scope else None
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, qual) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.level, node.module) if node.level else node.module
            found.append((node.lineno, target, qual))
            found.extend((node.lineno, f"{target}.{alias.name}", qual) for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                "import_module" and node.args and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, str) and not node.args[0].value.startswith("."):
            found.append((node.lineno, node.args[0].value, qual))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = scope + [node.name]
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(ast.parse(source), [])
    return found


def is_forbidden(target: str) -> bool:
    """torch & co., or one of our workstation modules (a module of a device package that only names a function
    of it, ``from .x import f``, resolves to ``pkg.x.f``: checked by its module)."""
    if target.split(".")[0] in sides.FORBIDDEN:
        return True
    if not target.startswith("tdm_edge"):
        return False
    names = [target, target.rpartition(".")[0]]  # the module, or the module a name comes from
    known = {m for m, _, _ in all_modules()}
    module = next((n for n in names if n in known), None)
    return module is not None and sides.side_of(module) == "workstation"


def allowed(module: str, qual: str | None) -> bool:
    if qual is None:
        return False
    for entry in sides.WORKSTATION_ENTRIES:
        mod, _, name = entry.partition(":")
        if mod == module and (name == "*" or qual == name or qual.startswith(name + ".")):
            return True
    return False


def test_every_module_is_on_exactly_one_side():
    unplaced = [m for m, _, _ in all_modules() if sides.side_of(m) is None]
    assert not unplaced, f"add these to DEVICE_MODULES or WORKSTATION_MODULES in tdm_edge/sides.py: {unplaced}"
    sides_of = {m: sides.side_of(m) for m, _, _ in all_modules()}
    assert sides_of["tdm_edge.metadata"] == sides_of["tdm_edge.runners.onnxrt"] == "device"
    assert sides_of["tdm_edge.quantize.commands"] == "device"  # the parser; the package is workstation
    assert sides_of["tdm_edge.quantize.calibrate"] == sides_of["tdm_edge.runners.pytorch"] == "workstation"


def test_no_device_module_imports_torch_or_the_workstation_side():
    problems = []
    for module, path, is_package in device_modules():
        for line, target, qual in imports_in(path.read_text(), module, is_package):
            if is_forbidden(target) and not allowed(module, qual):
                where = f"in {qual}()" if qual else "at module level"
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target} {where}")
    assert not problems, "device side imports the workstation side:\n" + "\n".join(problems)


def test_the_checker_sees_every_kind_of_import():
    source = ("import torch\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import timm\n"
              "def f():\n    from ..export.onnx_export import export_onnx\n"
              "class C:\n    def g(self):\n        import importlib\n        importlib.import_module('onnxsim')\n"
              "def h():\n    from . import selections\n")
    found = imports_in(source, "tdm_edge.runners.onnxrt", False)
    assert (1, "torch", None) in found and not any(t == "timm" for _, t, _ in found)  # TYPE_CHECKING skipped
    assert (6, "tdm_edge.export.onnx_export", "f") in found and (10, "onnxsim", "C.g") in found
    assert (12, "tdm_edge.runners.selections", "h") in found
    assert is_forbidden("tdm_edge.export.onnx_export.export_onnx") and is_forbidden("torch.nn")
    assert not is_forbidden("tdm_edge.runners.selections") and not is_forbidden("tdm_edge.metadata.read_metadata")
    assert allowed("tdm_edge.video.backends", "_load_torch") and not allowed("tdm_edge.video.backends", "_load_onnx")
    assert allowed("tdm_edge.bench.backends", "RunnerSpec._torch_runner")
    assert not allowed("tdm_edge.bench.backends", "RunnerSpec.make")


def test_every_workstation_entry_names_a_real_function():
    """The allowlist must not rot: each entry is a function (or class method) that exists."""
    defined = {}
    for module, path, _ in all_modules():
        names = set()

        def walk(node, scope):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(".".join(scope + [child.name]))
                    walk(child, scope + [child.name])

        walk(ast.parse(path.read_text()), [])
        defined[module] = names
    stale = [e for e in sides.WORKSTATION_ENTRIES
             if e.partition(":")[2] != "*" and e.partition(":")[2] not in defined.get(e.partition(":")[0], ())]
    assert not stale, f"WORKSTATION_ENTRIES names functions that do not exist: {stale}"


def test_require_workstation_names_the_extra_or_the_python(monkeypatch):
    from tdm_edge.errors import UsageError

    monkeypatch.setattr(sides, "missing_workstation_packages", lambda: ("torch", "timm"))
    monkeypatch.setattr(sides.sys, "version_info", (3, 11, 0))
    with pytest.raises(UsageError, match=r"needs torch and timm.*pip install 'tdm-edge\[export\]'"):
        sides.require_workstation("export")
    monkeypatch.setattr(sides.sys, "version_info", (3, 8, 18))
    with pytest.raises(UsageError, match=r"needs Python >= 3.10 \(this is 3.8\)"):
        sides.require_workstation("export")
    with pytest.raises(UsageError, match="this is 3.8"):
        sides.check_command_side("train")
    sides.check_command_side("run")  # a device command: no objection on 3.8
    assert "this is 3.8" in sides.workstation_hint(ModuleNotFoundError("x", name="torch.nn"), "flops")
    assert sides.workstation_hint(ModuleNotFoundError("x", name="cv2"), "run") is None  # not ours to explain


def test_device_modules_need_no_newer_python_than_3_8():
    """vermin's static minimum-version check over the device modules (skipped when vermin is not installed)."""
    vermin = shutil.which("vermin") or (Path(sys.executable).parent / "vermin")
    if not Path(vermin).is_file():
        pytest.skip("vermin is not installed (pip install vermin): the 3.8 venv run still imports every module")
    paths = [str(p) for _, p, _ in device_modules()]
    # --eval-annotations off: annotations are strings under `from __future__ import annotations`
    result = subprocess.run([str(vermin), "-t=3.8-", "--no-tips", "--violations", "--backport", "typing",
                             "--backport", "dataclasses", *paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


BUILTIN_GENERICS = {"list", "tuple", "dict", "set", "frozenset", "type"}
NEWER_STR_METHODS = {"removeprefix", "removesuffix"}  # Python 3.9


def python38_problems(source: str):
    """``(line, what)`` for what Python 3.8 cannot run and vermin does not see: ``list[int]`` evaluated at run
    time (outside annotations, which ``from __future__ import annotations`` keeps as strings), str.removeprefix."""
    tree = ast.parse(source)
    annotations = set()
    for node in ast.walk(tree):
        for ann in ([node.annotation] if isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation else []) + (
                [node.returns] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns else []):
            annotations.update(id(n) for n in ast.walk(ann))
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                 any(a.name == "annotations" for a in n.names) for n in tree.body)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                node.value.id in BUILTIN_GENERICS and (id(node) not in annotations or not future):
            problems.append((node.lineno, f"{node.value.id}[...] at run time"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in NEWER_STR_METHODS:
            problems.append((node.lineno, f".{node.func.attr}()"))
    return problems


def test_the_3_8_checker_finds_what_vermin_misses():
    source = ("from __future__ import annotations\nRelease = tuple[int, int]\n"
              "def f(s: str, n: list[int]) -> dict[str, int]:\n    x: set[int] = set()\n"
              "    return s.removeprefix('a')\n")
    assert python38_problems(source) == [(2, "tuple[...] at run time"), (5, ".removeprefix()")]
    assert python38_problems("def f(n: list[int]): pass\n") == [(1, "list[...] at run time")]  # no __future__


def test_device_modules_have_no_python_3_9_constructs():
    problems = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}" for _, path, _ in device_modules()
                for line, what in python38_problems(path.read_text())]
    assert not problems, "Python 3.8 cannot run these device-side lines:\n" + "\n".join(problems)


def test_every_device_module_imports_with_torch_blocked(tmp_path):
    """Each device module's module-level code runs in a process where torch & co. cannot be imported (on the 3.8
    venv this is also the check that they run on 3.8), and none of them ends up in sys.modules."""
    from .device.blocking import HELD, run_blocked

    names = [m for m, _, _ in device_modules()]
    code = ("import importlib, sys, traceback\nbad = 0\nfor name in %r:\n    try:\n"
            "        importlib.import_module(name)\n    except Exception as err:\n        bad += 1\n"
            "        print(name, traceback.format_exception_only(type(err), err)[-1].strip())\n"
            "print(bad, 'of', len(%r), 'failed')\n" % (names, names))
    rc, out, err = run_blocked(tmp_path / "site", ["-c", code], cwd=tmp_path)
    assert rc == 0 and HELD not in err, err
    assert out.splitlines()[-1] == f"0 of {len(names)} failed", out
    assert len(names) > 40


# where each third-party package a device module imports comes from; "base" ones must be in pyproject's dependencies
PROVIDED = {"numpy": "base", "onnx": "base", "google": "onnx's protobuf", "tqdm": "base", "onnxruntime": "[ort]",
            "cv2": "[camera], or JetPack's OpenCV", "tensorrt": "[trt], or JetPack", "cuda": "[trt] cuda-python",
            "pycuda": "the JetPack 5 recipe", "matplotlib": "[plots]", "PIL": "preprocess's resize without OpenCV"}


def base_dependencies() -> set:
    """The distribution names in pyproject's ``dependencies = [...]`` (read without tomllib: Python 3.8)."""
    import re

    text = (PACKAGE.parent / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    return {re.match(r"[A-Za-z0-9_.-]+", item).group(0).lower()
            for item in re.findall(r'^\s*"([^"]+)"', block, re.M)}


@pytest.mark.skipif(sys.version_info < (3, 10), reason="needs sys.stdlib_module_names (the main suite runs it)")
def test_device_imports_come_from_the_base_install_or_a_named_extra():
    unknown, base = [], base_dependencies()
    for module, path, is_package in device_modules():
        for line, target, qual in imports_in(path.read_text(), module, is_package):
            root = target.split(".")[0]
            if root == "tdm_edge" or root in sys.stdlib_module_names or allowed(module, qual):
                continue
            if root not in PROVIDED:
                unknown.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}")
    assert not unknown, "device modules import packages no install provides (add to PROVIDED and pyproject):\n" + \
        "\n".join(unknown)
    missing = [name for name, source in PROVIDED.items() if source == "base" and name not in base]
    assert not missing, f"base imports not in pyproject's dependencies: {missing} (have {sorted(base)})"
