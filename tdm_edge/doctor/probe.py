"""What this Python has: packages (version, file, who installed it), OpenCV's build, TensorRT, the CUDA bindings
and the driver, our plugin library. Each reader takes what it inspects as a parameter (a module importer, a
``sys.path``, a driver library), so the tests pass stand-ins; none of them imports torch.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from typing import Callable, Dict, Iterable, List, Optional

from ..lint.plugin_check import LIBRARY as PLUGIN_LIBRARY
from ..runners.gpu_info import gpu_info
from ..runners.trt_env import UNKNOWN
from ..video.cvutil import import_failure

OPENCV_DISTRIBUTIONS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                        "opencv-contrib-python-headless")

Importer = Callable[[str], object]


def provider(path: Optional[str]) -> str:
    """Who put a module's file there: apt (``/usr/lib/python3*/dist-packages``), ``sudo pip`` (``/usr/local``), pip."""
    if not path:
        return "unknown"
    if re.match(r"/usr/lib/python3[\d.]*/dist-packages/", path):
        return "system (apt)"
    if re.match(r"/usr/local/lib/python3[\d.]*/dist-packages/", path):
        return "pip (system-wide, /usr/local)"
    return "pip"


def dpkg_owner(path: Optional[str], which=shutil.which, run=subprocess.run) -> Optional[str]:
    """The Debian package that installed ``path`` (``dpkg -S``: ``libopencv-python: /usr/lib/...``), or None."""
    if not path or which("dpkg") is None:
        return None
    try:
        done = run(["dpkg", "-S", path], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or ":" not in done.stdout:
        return None
    return done.stdout.splitlines()[0].split(": ", 1)[0].strip() or None


def name_apt_package(facts: Dict, owner: Callable[[Optional[str]], Optional[str]] = dpkg_owner) -> Dict:
    """``provider`` ``"system (apt)"`` becomes ``"system (apt: libopencv-python)"`` when dpkg knows the file."""
    if facts.get("provider") == "system (apt)":
        package = owner(facts.get("path"))
        if package:
            facts = dict(facts, provider=f"system (apt: {package})")
    return facts


def python_facts(prefix: str = sys.prefix, base_prefix: str = getattr(sys, "base_prefix", sys.prefix)) -> Dict:
    """This Python: version, executable, whether it is a venv and whether that venv sees the system packages."""
    venv = prefix != base_prefix
    system_site = None
    if venv:
        try:
            with open(os.path.join(prefix, "pyvenv.cfg")) as f:
                cfg = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in f)}
            system_site = cfg.get("include-system-site-packages", "").lower() == "true"
        except OSError:
            pass
    return {"version": ".".join(map(str, sys.version_info[:3])), "executable": sys.executable, "venv": venv,
            "system_site_packages": system_site}


def find_module(name: str, find_spec=importlib.util.find_spec) -> Optional[str]:
    """Where ``name`` would be imported from, without importing it (None when it is not installed)."""
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        return spec.origin
    locations = list(spec.submodule_search_locations or [])
    return locations[0] if locations else "namespace"


def module_facts(name: str, importer: Importer = importlib.import_module) -> Dict:
    """``{"version", "path", "provider", "error"}`` of a module that is imported to ask (numpy, onnx, ...)."""
    try:
        module = importer(name)
    except Exception as err:  # noqa: BLE001 - a broken install is a fact to report, in one line
        missing = isinstance(err, ImportError) and getattr(err, "name", None) == name
        return {"version": None, "path": None, "provider": None,
                "error": "not installed" if missing else _first_line(err)}
    path = getattr(module, "__file__", None)
    return {"version": str(getattr(module, "__version__", "unknown")), "path": path, "provider": provider(path),
            "error": None}


def cv2_candidates(paths: Iterable[str]) -> List[str]:
    """Every OpenCV on a ``sys.path``, in import order: the first one is the one Python imports, shadowing the rest."""
    found = []
    for entry in paths:
        if not entry or not os.path.isdir(entry):
            continue
        package = os.path.join(entry, "cv2")
        if os.path.isdir(package):
            found.append(package)
            continue
        found.extend(os.path.join(entry, f) for f in sorted(os.listdir(entry))
                     if f.startswith("cv2.") and f.endswith(".so"))
    return found


def build_feature(build_information: str, feature: str) -> Optional[str]:
    """``"YES (1.16.3)"``, ``"NO"`` or None: the value of one line of ``cv2.getBuildInformation()`` (first match)."""
    for line in build_information.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == feature.lower():
            return value.strip()
    return None


def opencv_facts(importer: Importer = importlib.import_module, paths: Optional[Iterable[str]] = None,
                 distribution_location: Optional[Callable[[str], Optional[str]]] = None) -> Dict:
    """OpenCV's version, file, provider, GStreamer and FFmpeg support, the OpenCVs it shadows, or why it fails.

    Args:
        importer: ``importlib.import_module`` or a stand-in.
        paths: the ``sys.path`` searched for every OpenCV (default: this one).
        distribution_location: pip distribution name -> its site-packages folder, or None when not installed.
    """
    distribution_location = distribution_location or _distribution_location
    candidates = cv2_candidates(sys.path if paths is None else paths)
    noise = io.StringIO()
    try:
        with contextlib.redirect_stderr(noise):  # numpy 2 prints a page before an OpenCV built for numpy 1.x fails
            cv2 = importer("cv2")
    except (ImportError, AttributeError) as err:
        return {"version": None, "path": candidates[0] if candidates else None,
                "error": import_failure(err, noise.getvalue()), "installed": bool(candidates),
                "shadowed": candidates[1:]}
    path = getattr(cv2, "__file__", None) or ""
    info = cv2.getBuildInformation() if hasattr(cv2, "getBuildInformation") else ""
    pips = {name: distribution_location(name) for name in OPENCV_DISTRIBUTIONS}
    pips = {name: where for name, where in pips.items() if where}
    owner = next((name for name, where in pips.items() if _inside(path, where)), None)
    return {"version": str(getattr(cv2, "__version__", "unknown")), "path": path, "error": None, "installed": True,
            "provider": f"pip ({owner})" if owner else provider(path),
            "gstreamer": build_feature(info, "GStreamer"), "ffmpeg": build_feature(info, "FFMPEG"),
            "shadowed": [c for c in candidates if not _inside(path, c)], "pip_distributions": sorted(pips)}


def _inside(path: str, folder_or_file: str) -> bool:
    """Whether ``path`` is ``folder_or_file`` or lies below it."""
    folder_or_file = os.path.normpath(folder_or_file)
    return os.path.normpath(path) == folder_or_file or path.startswith(folder_or_file.rstrip(os.sep) + os.sep)


def _distribution_location(name: str) -> Optional[str]:
    """The site-packages folder of an installed distribution, or None (``importlib.metadata``: Python 3.8+)."""
    from importlib import metadata

    try:
        return str(metadata.distribution(name).locate_file(""))
    except metadata.PackageNotFoundError:
        return None


def distribution_version(name: str) -> Optional[str]:
    """An installed distribution's version without importing it, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tensorrt_facts(importer: Importer = importlib.import_module) -> Dict:
    """TensorRT's version, where it is from, and whether tdm-edge can use it (8.5 or newer)."""
    facts = module_facts("tensorrt", importer)
    if facts["version"]:
        numbers = re.findall(r"\d+", facts["version"])[:2]
        facts["usable"] = len(numbers) == 2 and (int(numbers[0]), int(numbers[1])) >= (8, 5)
    else:
        facts["usable"] = False
    return facts


def cuda_version_text(number: Optional[int]) -> Optional[str]:
    """CUDA's integer versions (``12060``) as text (``"12.6"``)."""
    if not number:
        return None
    return f"{number // 1000}.{number % 1000 // 10}"


def driver_facts(lib=None) -> Dict:
    """The CUDA driver (``libcuda.so.1``) through ctypes: its CUDA version, the first GPU's name and compute capability.

    No CUDA binding needed. ``lib`` is the loaded library (the tests pass a stand-in); without one, all None.
    """
    facts: Dict[str, Optional[str]] = {"driver": None, "gpu": None, "compute_capability": None, "error": None}
    if lib is None:
        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError:
            facts["error"] = "no CUDA driver (libcuda.so.1)"
            return facts
    version = ctypes.c_int()
    if lib.cuDriverGetVersion(ctypes.byref(version)) == 0:
        facts["driver"] = cuda_version_text(version.value)
    if lib.cuInit(0) != 0:
        facts["error"] = "the CUDA driver finds no GPU (cuInit failed)"
        return facts
    name, capability = gpu_info(0, lib)  # the same driver calls build makes for the engine's sidecar
    if capability != UNKNOWN:
        facts["gpu"], facts["compute_capability"] = name, capability
    return facts


def cuda_python_facts(importer: Importer = importlib.import_module,
                      version_of: Callable[[str], Optional[str]] = distribution_version) -> Dict:
    """cuda-python: its version, the CUDA runtime it binds and the driver's, and whether that driver runs it."""
    runtime = None
    for name in ("cuda.bindings.runtime", "cuda.cudart"):  # >= 12.8, older
        try:
            runtime = importer(name)
            break
        except ImportError as err:
            error = "not installed" if getattr(err, "name", "") in ("cuda", "cuda.bindings", name) else _first_line(err)
        except Exception as err:  # noqa: BLE001
            error = _first_line(err)
    version = version_of("cuda-python") or version_of("cuda-bindings")
    if runtime is None:
        return {"version": version, "error": error, "runtime": None, "driver": None, "matches": False}
    try:
        drv = _value(runtime.cudaDriverGetVersion())
        run = _value(runtime.cudaRuntimeGetVersion())
    except Exception as err:  # noqa: BLE001
        return {"version": version, "error": _first_line(err), "runtime": None, "driver": None, "matches": False}
    return {"version": version, "error": None, "runtime": cuda_version_text(run), "driver": cuda_version_text(drv),
            "matches": bool(drv) and bool(run) and drv // 1000 >= run // 1000}


def pycuda_facts(importer: Importer = importlib.import_module) -> Dict:
    """pycuda: its version, the CUDA it was built against and the driver's (no context is created)."""
    try:
        pycuda = importer("pycuda")
        driver = importer("pycuda.driver")
    except ImportError as err:
        missing = getattr(err, "name", "") in ("pycuda", "pycuda.driver")
        return {"version": None, "error": "not installed" if missing else _first_line(err), "built_for": None,
                "driver": None}
    except Exception as err:  # noqa: BLE001
        return {"version": None, "error": _first_line(err), "built_for": None, "driver": None}
    built = ".".join(str(x) for x in driver.get_version()[:2])
    try:
        drv = cuda_version_text(driver.get_driver_version())
    except Exception:  # noqa: BLE001 - no driver: pycuda still imports
        drv = None
    return {"version": str(getattr(pycuda, "VERSION_TEXT", "unknown")), "error": None, "built_for": built,
            "driver": drv}


def auto_binding(cuda_python: Dict, pycuda: Dict) -> Optional[str]:
    """What ``--cuda auto`` picks: cuda-python when it imports and the driver runs it, else pycuda, else None."""
    if cuda_python.get("error") is None and cuda_python.get("matches"):
        return "cuda-python"
    if pycuda.get("error") is None:
        return "pycuda"
    return None


def plugin_folders(package_dir: str, cwd: str, environ: Dict[str, str]) -> List[str]:
    """Where the plugin library is looked for: ``build/tdm_merge`` here and beside the package, LD_LIBRARY_PATH."""
    repo = os.path.dirname(package_dir)
    folders = [os.path.join(cwd, "build", "tdm_merge"), os.path.join(repo, "build", "tdm_merge"), cwd]
    folders += [p for p in environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    unique = []
    for folder in folders:
        if os.path.abspath(folder) not in unique:
            unique.append(os.path.abspath(folder))
    return unique


def find_plugin(folders: Iterable[str]) -> Optional[str]:
    """The first ``libtdm_merge_plugin.so`` in ``folders``, or None."""
    for folder in folders:
        path = os.path.join(folder, PLUGIN_LIBRARY)
        if os.path.isfile(path):
            return path
    return None


def workstation_facts(find_spec=importlib.util.find_spec) -> Dict[str, Optional[str]]:
    """Where torch and timm would be imported from (None: not installed); neither is imported."""
    return {name: find_module(name, find_spec) for name in ("torch", "timm")}


def _value(result):
    """A cuda-python result ``(error, value)``'s value, or RuntimeError naming the error."""
    err, value = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {int(err)}")
    return int(value)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
