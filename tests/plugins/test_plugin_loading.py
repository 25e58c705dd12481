"""Loading libtdm_merge_plugin.so the way each TensorRT release loads plugin libraries, without TensorRT.

Per release (public headers from a clone of github.com/NVIDIA/TensorRT named by $TDM_TENSORRT_MIRROR), the library is
built the way plugins/tdm_merge/CMakeLists.txt builds it (same warnings, the kernel compiled for the CPU with
plugins/cudacpu instead of nvcc), and tests/plugins/trt_standin.cpp (a stand-in registry that rejects a second
registration, a logger finder, that release's loader) dlopens it. Asserted: the exported entry points are those of
TensorRT's own plugin libraries of that release, every creator is registered exactly once, initTdmMergePlugins
after the loader registers nothing twice, errors reach the logger TensorRT handed over, and both plugin versions'
enqueue equals the host build of the stage bit for bit. The stand-in is not TensorRT: what it encodes is read from
TensorRT's sources (plugin/common/vfcCommon.cpp, plugin/vc/vfcCommon.cpp, samples/trtexec/README.md).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .cpu_kernel import compiler

ROOT = Path(__file__).resolve().parents[2]
KERNEL_DIR = ROOT / "plugins" / "tdm_merge"
CUDACPU = ROOT / "plugins" / "cudacpu"
HERE = Path(__file__).resolve().parent
WARNINGS = ["-Wall", "-Wextra", "-Werror"]  # CMakeLists.txt's, for the C++ sources
DEPRECATED_OK = {"batMergePluginLegacy.cpp", "batMergePlugins.cpp"}  # -Wno-deprecated-declarations there too

sys.path.insert(0, str(CUDACPU))
import translate  # noqa: E402

# ref -> (exported entry points, creators the release's loader registers)
RELEASES = {
    "release/8.5": ({"getPluginCreators", "initTdmMergePlugins"}, ["::TdmBatMerge/1"]),
    "v8.6.1": ({"getPluginCreators", "setLoggerFinder", "initTdmMergePlugins"}, ["::TdmBatMerge/1"]),
    "v9.3.0": ({"getPluginCreators", "setLoggerFinder", "initTdmMergePlugins"}, ["::TdmBatMerge/1"]),
    "v10.3.0": ({"getCreators", "setLoggerFinder", "initTdmMergePlugins"}, ["::TdmBatMerge/1", "::TdmBatMerge/2"]),
    "v11.1": ({"getCreators", "setLoggerFinder", "initTdmMergePlugins"}, ["::TdmBatMerge/1", "::TdmBatMerge/2"]),
}


def mirror() -> Path | None:
    path = os.environ.get("TDM_TENSORRT_MIRROR")
    return Path(path) if path and Path(path).exists() and shutil.which("git") else None


def headers(ref: str, dest: Path) -> Path:
    """include/ of ``ref`` from the mirror into ``dest`` (skips the test when the mirror lacks the ref)."""
    git = ["git", "-C", str(mirror())]
    if subprocess.run([*git, "rev-parse", "--verify", "--quiet", ref + "^{commit}"], capture_output=True).returncode:
        pytest.skip(f"the TensorRT mirror has no {ref}")
    archive = subprocess.run([*git, "archive", "--format=tar", ref, "include"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return dest / "include"


@pytest.fixture(scope="module")
def kernel_object(tmp_path_factory) -> Path:
    """batMergeKernel.cu (unmodified, translated copy) compiled for the CPU once: it includes no TensorRT header."""
    if compiler() is None:
        pytest.skip("no host C++ compiler")
    if mirror() is None:
        pytest.skip("TensorRT headers not available: set TDM_TENSORRT_MIRROR to a clone of github.com/NVIDIA/TensorRT "
                    "(and have git)")
    tmp = tmp_path_factory.mktemp("kernel_object")
    translate.translate_tree(KERNEL_DIR, tmp / "src")
    obj = tmp / "batMergeKernel.o"
    cmd = [compiler(), "-std=c++17", "-O2", *WARNINGS, "-fPIC", "-c", "-x", "c++", "-include",
           str(CUDACPU / "cuda_runtime.h"), "-I", str(CUDACPU), "-I", str(tmp / "src"), str(tmp / "src" /
                                                                                           "batMergeKernel.cu"),
           "-o", str(obj)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return obj


def build(include: Path, kernel: Path, out: Path) -> tuple[Path, Path, Path]:
    """The plugin library (wrappers and entry points against ``include``), the stand-in loader, and the stand-in as a
    shared library (for a Python process: getPluginRegistry and standin_registry_text)."""
    objects = []
    for name in ("batMergePluginLegacy.cpp", "batMergePlugin.cpp", "batMergePlugins.cpp"):
        obj = out / (name + ".o")
        extra = ["-Wno-deprecated-declarations"] if name in DEPRECATED_OK else []
        cmd = [compiler(), "-std=c++17", "-O1", *WARNINGS, *extra, "-fPIC", "-c", "-isystem", str(include), "-I",
               str(CUDACPU), "-I", str(KERNEL_DIR), str(KERNEL_DIR / name), "-o", str(obj)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-4000:]
        objects.append(str(obj))
    lib = out / "libtdm_merge_plugin.so"
    standin = out / "trt_standin"
    standin_obj = out / "trt_standin.o"
    for cmd in ([compiler(), "-shared", *objects, str(kernel), "-o", str(lib)],
                [compiler(), "-std=c++17", "-O1", "-Wall", "-Wno-deprecated-declarations", "-fPIC", "-c", "-isystem",
                 str(include), "-I", str(CUDACPU), "-I", str(KERNEL_DIR), str(HERE / "trt_standin.cpp"), "-o",
                 str(standin_obj)],
                [compiler(), "-rdynamic", str(standin_obj), "-ldl", "-o", str(standin)],
                [compiler(), "-shared", str(standin_obj), "-ldl", "-o", str(out / "libtrt_standin.so")]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-4000:]
    return lib, standin, out / "libtrt_standin.so"


def run_standin(standin: Path, lib: Path) -> dict[str, list[str]]:
    done = subprocess.run([str(standin), str(lib)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, rest = line.partition(" ")
        lines.setdefault(key, []).append(rest)
    return lines


@pytest.mark.slow  # about 15 s a release: three wrapper objects and the stand-in compiled against its headers
@pytest.mark.parametrize("ref", list(RELEASES))
def test_loading_per_release(kernel_object, tmp_path, ref):
    exports, loaded = RELEASES[ref]
    lib, standin, _ = build(headers(ref, tmp_path), kernel_object, tmp_path)
    got = run_standin(standin, lib)
    assert got["selftest"] == ["double rejected"]  # the stand-in does reject a second registration
    assert set(got["exports"][0].split()) == exports
    static = ref == "release/8.5"
    registered = " ".join(loaded) + " | rejected 0"
    assert got["after_dlopen"] == [registered if static else "| rejected 0"]  # 8.5: registers itself, nothing later
    assert got["after_load"] == [registered]
    # initTdmMergePlugins after the loader: nothing twice in "", every creator once more in "ns2"
    assert got["init_default"] == ["1"] and got["init_ns2"] == ["1"]
    both = loaded + [name.replace("::", "ns2::") for name in loaded]
    assert got["after_init"] == [" ".join(both) + " | rejected 0"]
    assert got["rejected"] == ["::X/1"]  # only the self-test's: no creator of the library was ever refused
    # errors go to the logger TensorRT handed over: the finder's (8.6+), else initTdmMergePlugins' logger
    logger = "init" if static else "finder"
    v3 = ref.startswith(("v10", "v11"))
    errors = [line for line in got["log"] if line.startswith(logger + " error TdmBatMerge: ")]
    assert len(errors) == len(got["log"]) == (4 if v3 else 3)
    assert "createPlugin" in errors[0] and "enqueue: tensors do not match" in errors[1]
    assert "deserializePlugin: serialised plugin has the wrong length" in errors[2]
    assert not v3 or "enqueue: tensors do not match" in errors[3]
    assert got["create_empty"] == ["null"] and got["deserialize_garbage"] == ["null"]
    assert got["deserialize"] == ["ok"]
    # enqueue on the CPU (cudacpu kernel): equal to the host build; a wrong output shape refused before launch
    assert got["enqueue_v1"] == ["rc 0 equal"]
    assert got["enqueue_v1_wrong_output"] == ["rc 1 differs"]
    if v3:
        assert got["v3_clone_fields"] == ["ok"]
        assert got["enqueue_v3"] == ["rc 0 equal"]
        assert got["enqueue_v3_wrong_output"] == ["rc -1 differs"]
    else:
        assert "enqueue_v3" not in got
    assert got["done"] == [""]


@pytest.mark.slow
@pytest.mark.parametrize("ref, registered", [("release/8.5", "::TdmBatMerge/1"),
                                             ("v10.3.0", "::TdmBatMerge/1 ::TdmBatMerge/2")])
def test_runner_load_plugins_registers_once(kernel_object, tmp_path, ref, registered):
    """tdm_edge.runners.trt_env.load_plugins (what `tdm-edge build/run --plugins` use): ctypes.CDLL, then
    initTdmMergePlugins; on 8.5 the library registered itself and the call adds nothing, on 10.x it registers both
    creators. Run in a child process: the stand-in's getPluginRegistry must be loaded first, RTLD_GLOBAL."""
    lib, _, standin_lib = build(headers(ref, tmp_path), kernel_object, tmp_path)
    script = (
        "import ctypes, sys, types\n"
        "from tdm_edge.runners import trt_env\n"
        f"registry = ctypes.CDLL({str(standin_lib)!r}, mode=ctypes.RTLD_GLOBAL)\n"
        "registry.standin_registry_text.restype = ctypes.c_char_p\n"
        "trt = types.SimpleNamespace(init_libnvinfer_plugins=lambda logger, ns: True)\n"
        f"loaded = trt_env.load_plugins(trt, None, [{str(lib)!r}])\n"
        "print(sorted(loaded), registry.standin_registry_text().decode())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"['libtdm_merge_plugin.so'] {registered} | rejected 0"
