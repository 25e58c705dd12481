"""The doctor's facts gathered in one dict, the verdict per command, and the screen (or JSON) made of them.

:func:`verdicts` is a pure function of the facts: which commands can run here and, for each that cannot, the one
line that fixes it. The fix names the JetPack recipe on a Jetson (constraints/jetpack-*.txt, docs/jetson.md).
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional

from .. import __version__
from . import jetson, probe

WORKSTATION_PYTHON = (3, 10)


class Verdict(NamedTuple):
    """One command: whether it can run here and, if not, the one line that fixes it."""

    command: str
    ok: bool
    fix: Optional[str] = None


def gather(root: str = "/", package_dir: Optional[str] = None, cwd: Optional[str] = None,
           environ: Optional[Dict[str, str]] = None) -> Dict:
    """Every fact the doctor shows, read from this machine (``root``: ``/``; the tests read a stand-in tree)."""
    package_dir = package_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environ = dict(os.environ) if environ is None else environ
    cuda_python, pycuda = probe.cuda_python_facts(), probe.pycuda_facts()
    board = jetson.jetson_facts(root, jetson.run_nvpmodel() if root == "/" else None)
    return {
        "tdm_edge": {"version": __version__, "path": package_dir},
        "python": probe.python_facts(),
        "numpy": probe.name_apt_package(probe.module_facts("numpy")),
        "onnx": {"version": probe.distribution_version("onnx"), "path": probe.find_module("onnx")},
        "onnxruntime": {"version": probe.distribution_version("onnxruntime")
                        or probe.distribution_version("onnxruntime-gpu"), "path": probe.find_module("onnxruntime")},
        "opencv": probe.name_apt_package(probe.opencv_facts()),
        "tensorrt": probe.name_apt_package(probe.tensorrt_facts()),
        "cuda": {"driver": probe.driver_facts(), "cuda_python": cuda_python, "pycuda": pycuda,
                 "auto": probe.auto_binding(cuda_python, pycuda)},
        "jetson": board,
        "plugin": probe.find_plugin(probe.plugin_folders(package_dir, cwd or os.getcwd(), environ)),
        "workstation": probe.workstation_facts(),
    }


def _recipe_install(facts: Dict, what: str) -> str:
    """``pip install -c constraints/jetpack-6.1.txt WHAT`` on a Jetson with a recipe, else ``pip install WHAT``."""
    recipe = (facts.get("jetson") or {}).get("recipe")
    return f"pip install -c constraints/{recipe} {what}" if recipe else f"pip install {what}"


def _tensorrt_fix(facts: Dict) -> Optional[str]:
    trt = facts["tensorrt"]
    if trt.get("usable"):
        return None
    if trt.get("version"):
        return f"TensorRT {trt['version']} is too old: tdm-edge needs 8.5 or newer"
    if facts.get("jetson"):
        venv = facts["python"].get("venv") and not facts["python"].get("system_site_packages")
        see = ("; this venv cannot see it: recreate it with python3 -m venv --system-site-packages" if venv
               else " (TensorRT comes with JetPack)")
        return f"sudo apt install python3-libnvinfer{see}"
    state = "is not installed" if trt.get("error") in (None, "not installed") else f"does not import ({trt['error']})"
    return f"TensorRT {state}: pip install 'tdm-edge[trt]' (x86_64 with CUDA 12; 'tdm-edge[trt-cu13]' for CUDA 13)"


def _binding_fix(facts: Dict) -> Optional[str]:
    cuda = facts["cuda"]
    if cuda["auto"]:
        return None
    recipe = (facts.get("jetson") or {}).get("recipe")
    wanted = jetson.BINDINGS.get(recipe, "cuda-python") if recipe else "cuda-python"
    cp = cuda["cuda_python"]
    if cp.get("error") is None and not cp.get("matches"):
        driver = cp.get("driver") or cuda["driver"].get("driver")
        if not driver:
            return "no CUDA driver answers (cuDriverGetVersion): tdm-edge runs engines only on a CUDA GPU"
        major = int(driver.split(".")[0])
        return (f"cuda-python {cp.get('version')} binds CUDA {cp.get('runtime')}, newer than this driver's {driver}: "
                + _recipe_install(facts, f"'cuda-python>={major},<{major + 1}'"))
    if wanted == "pycuda":
        return ("no CUDA binding: pip install pycuda (it builds against JetPack's CUDA 11.4: export "
                "PATH=/usr/local/cuda/bin:$PATH first; cuda-python has no aarch64 wheel for CUDA 11.4)")
    if facts.get("jetson"):
        return "no CUDA binding: " + _recipe_install(facts, "cuda-python")
    return "no CUDA binding: pip install 'tdm-edge[trt]' (cuda-python 12; or pip install pycuda)"


def _opencv_fix(facts: Dict, gstreamer: bool = False) -> Optional[str]:
    cv = facts["opencv"]
    if cv.get("error") and not cv.get("installed") and facts.get("jetson"):
        venv = facts["python"].get("venv") and not facts["python"].get("system_site_packages")
        see = ": this venv cannot see it, recreate it with python3 -m venv --system-site-packages" if venv else ""
        return f"JetPack's OpenCV is not found (sudo apt install nvidia-opencv){see}"
    if cv.get("error"):
        return cv["error"]
    if gstreamer and not str(cv.get("gstreamer") or "").upper().startswith("YES"):
        if facts.get("jetson"):
            return ("this OpenCV has no GStreamer: use JetPack's (sudo apt install nvidia-opencv; pip uninstall "
                    f"{' '.join(cv.get('pip_distributions') or ['opencv-python'])} so that it is not shadowed)")
        return "this OpenCV has no GStreamer: build OpenCV with -DWITH_GSTREAMER=ON (csi:// needs a Jetson)"
    return None


def _workstation_fix(facts: Dict, needs_ort: bool = False) -> Optional[str]:
    version = tuple(int(x) for x in facts["python"]["version"].split(".")[:2])
    if version < WORKSTATION_PYTHON:
        return (f"the workstation side needs Python >= 3.10 (this is {facts['python']['version']}): export on a PC, "
                "copy the .onnx here")
    missing = [name for name, where in facts["workstation"].items() if where is None]
    if needs_ort and not facts["onnxruntime"].get("path"):
        missing.append("onnxruntime")
    if missing:
        jetson_note = " (on a Jetson: NVIDIA's torch wheel first, see docs/jetson.md)" if facts.get("jetson") else ""
        return f"needs {', '.join(missing)}: pip install 'tdm-edge[export]'{jetson_note}"
    return None


def _first(*fixes: Optional[str]) -> Optional[str]:
    return next((f for f in fixes if f), None)


def verdicts(facts: Dict) -> List[Verdict]:
    """Per command: can it run here, and if not, the one line that fixes it (the first thing missing)."""
    onnx_fix = None if facts["onnx"].get("path") else _recipe_install(facts, "'onnx>=1.15'")
    ort_fix = None if facts["onnxruntime"].get("path") else (
        "pip install onnxruntime (on a Jetson prefer the TensorRT engine: tdm-edge build)" if facts.get("jetson")
        else "pip install 'tdm-edge[ort]'")
    trt_fix = _tensorrt_fix(facts)
    engine_fix = _first(trt_fix, _binding_fix(facts))
    plugin_fix = None if facts.get("plugin") else (
        "build the plugin: cmake -S plugins/tdm_merge -B build/tdm_merge && cmake --build build/tdm_merge "
        "(plugins/README.md)")
    csi_fix = None if facts.get("jetson") else "csi:// cameras are a Jetson's (nvarguscamerasrc)"
    rows = [
        ("check MODEL.onnx", onnx_fix),
        ("build MODEL.onnx", _first(onnx_fix, trt_fix)),
        ("build MODEL.onnx --plugins libtdm_merge_plugin.so", _first(onnx_fix, trt_fix, plugin_fix)),
        ("run VIDEO --model MODEL.onnx --backend ort", _first(_opencv_fix(facts), ort_fix)),
        ("run VIDEO --model MODEL.engine", _first(_opencv_fix(facts), engine_fix)),
        ("run csi://0 --model MODEL.engine", _first(csi_fix, _opencv_fix(facts, gstreamer=True), engine_fix)),
        ("bench --model MODEL.onnx (ONNX Runtime)", ort_fix),
        ("bench --model MODEL.engine", engine_fix),
        ("export / flops / models", _workstation_fix(facts)),
        ("calibrate", _workstation_fix(facts, needs_ort=True)),
        ("train / eval", _workstation_fix(facts)),
    ]
    return [Verdict(command, fix is None, fix) for command, fix in rows]


def _package_line(facts: Dict) -> str:
    if facts.get("version"):
        where = facts.get("path") or ""
        source = f", {facts['provider']}" if facts.get("provider") else ""
        return f"{facts['version']}  {where}{source}"
    return facts.get("error") or "not installed"


def _opencv_line(cv: Dict) -> List[str]:
    if cv.get("error"):
        lines = [f"does not import: {cv['error']}" if cv.get("installed") else "not installed"]
    else:
        lines = [f"{cv['version']}  {cv['path']}, {cv['provider']}",
                 f"GStreamer: {cv.get('gstreamer') or 'unknown'}, FFmpeg: {cv.get('ffmpeg') or 'unknown'}"]
    lines += [f"shadows: {path}" for path in cv.get("shadowed", [])]
    return lines


def _cuda_lines(cuda: Dict) -> List[str]:
    drv = cuda["driver"]
    gpu = f"{drv['gpu']} (compute {drv['compute_capability']})" if drv.get("gpu") else (drv.get("error") or "none")
    cp, pc = cuda["cuda_python"], cuda["pycuda"]
    cp_text = (f"{cp['version']} (CUDA {cp['runtime']}{'' if cp['matches'] else ', the driver cannot run it'})"
               if cp.get("error") is None else cp["error"])
    pc_text = f"{pc['version']} (built for CUDA {pc['built_for']})" if pc.get("error") is None else pc["error"]
    return [f"driver: CUDA {drv['driver'] or 'none'}; GPU: {gpu}",
            f"cuda-python: {cp_text}; pycuda: {pc_text}; --cuda auto uses: {cuda['auto'] or 'none'}"]


def _jetson_lines(board: Optional[Dict]) -> List[str]:
    if not board:
        return ["not a Jetson (no /etc/nv_tegra_release)"]
    lines = [f"L4T {board['l4t']} = JetPack {board['jetpack'] or 'unknown'}, board {board['board']}, "
             f"{board.get('model') or 'model unknown'}",
             f"recipe: constraints/{board['recipe']} (docs/jetson.md)" if board.get("recipe")
             else "no tdm-edge recipe for this JetPack (JetPack 5.1 to 7 are supported)"]
    mode = board.get("power_mode")
    power = f"nvpmodel {mode} (mode {board.get('power_mode_id')})" if mode else "nvpmodel: unknown"
    clocks = jetson.clocks_line(board)
    lines.append(power + (f"; clocks {', '.join(clocks)}" if clocks else ""))
    below = [n for n in ("gpu", "cpu") if board.get(f"{n}_mhz") is None
             or board[f"{n}_mhz"] < (board.get(f"{n}_max_mhz") or 0)]
    if below:
        lines.append("clocks below their maximum (or unknown): before benchmarks, sudo nvpmodel -m 0 && sudo "
                     "jetson_clocks (docs/jetson.md)")
    return lines


def render(facts: Dict, results: List[Verdict]) -> str:
    """The screen: one fact per line, then one line per command (``ok`` or ``no`` and its fix)."""
    py = facts["python"]
    venv = "no venv"
    if py["venv"]:
        venv = "venv, system site-packages " + ("yes" if py["system_site_packages"] else "no")
    rows = [("tdm-edge", [f"{facts['tdm_edge']['version']}  {facts['tdm_edge']['path']}"]),
            ("python", [f"{py['version']}  {py['executable']} ({venv})"]),
            ("numpy", [_package_line(facts["numpy"])]),
            ("onnx", [_package_line(facts["onnx"])]),
            ("onnxruntime", [_package_line(facts["onnxruntime"])]),
            ("opencv", _opencv_line(facts["opencv"])),
            ("tensorrt", [_package_line(facts["tensorrt"])]),
            ("cuda", _cuda_lines(facts["cuda"])),
            ("jetson", _jetson_lines(facts.get("jetson"))),
            ("plugin", [facts["plugin"] or f"{probe.PLUGIN_LIBRARY} not found (only --merge plugin models need it)"]),
            ("torch", [facts["workstation"]["torch"] or "not installed (the device side does not need it)"])]
    lines = ["tdm-edge doctor (paste all of it into a bug report)"]
    for label, values in rows:
        for i, value in enumerate(values):
            lines.append(f"{label if i == 0 else '':12s} {value}")
    lines.append("commands:")
    for v in results:
        lines.append(f"  {'ok' if v.ok else 'no':2s}  {v.command}" + ("" if v.ok else f"\n        fix: {v.fix}"))
    return "\n".join(lines)


def as_json(facts: Dict, results: List[Verdict]) -> Dict:
    """The facts and the verdicts as one JSON-ready dict."""
    return {"facts": facts, "commands": [v._asdict() for v in results]}
