"""The machine's state beside every benchmark result: load, CPU frequency governors, backend versions, the GPU,
and on a Jetson the power mode, the clocks (locked or not) and the average power of each measurement.

Device side: the standard library only at module level (Python 3.8+); every reader takes the paths (or the
command runner) it reads, so tests feed stand-in files. Nothing here fails: what cannot be read is None.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import threading
from typing import Callable, Dict, List, Optional

TEGRASTATS_RAILS = ("VDD_IN", "POM_5V_IN")  # the board's input rail: Orin, then Xavier/Nano/TX2 naming


def load_average(path: str = "/proc/loadavg") -> Optional[List[float]]:
    """The 1, 5 and 15 minute load averages, or None when ``path`` cannot be read."""
    try:
        with open(path) as f:
            return [float(v) for v in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def cpu_governors(root: str = "/sys/devices/system/cpu") -> Dict[str, int]:
    """``{governor: number of CPUs}`` from every ``cpuN/cpufreq/scaling_governor`` (empty without cpufreq, as in
    most VMs and containers)."""
    counts: Dict[str, int] = {}
    for path in sorted(glob.glob(os.path.join(root, "cpu[0-9]*", "cpufreq", "scaling_governor"))):
        try:
            with open(path) as f:
                name = f.read().strip()
        except OSError:
            continue
        counts[name] = counts.get(name, 0) + 1
    return counts


def gpu_devfreq(root: str = "/sys/class/devfreq") -> Optional[Dict[str, object]]:
    """A Jetson GPU's devfreq node (``17000000.ga10b``, ``57000000.gpu``...): governor and MHz now/min/max."""
    from ..doctor.jetson import gpu_devfreq_node

    node = gpu_devfreq_node(root)
    if node is None:
        return None

    def read(name: str) -> Optional[str]:
        try:
            with open(os.path.join(node, name)) as f:
                return f.read().strip()
        except OSError:
            return None

    def mhz(name: str) -> Optional[int]:
        text = read(name)
        return round(int(text) / 1e6) if text and text.isdigit() else None

    return {"node": os.path.basename(node), "governor": read("governor"), "mhz": mhz("cur_freq"),
            "min_mhz": mhz("min_freq"), "max_mhz": mhz("max_freq")}


def clocks_locked(governors: Dict[str, int], gpu: Optional[Dict[str, object]]) -> Optional[bool]:
    """Whether the clocks are pinned the way ``jetson_clocks`` pins them: every CPU on ``performance`` and the GPU
    at its maximum (min == max, or the ``performance`` governor). None when nothing could be read."""
    if not governors and gpu is None:
        return None
    cpu_ok = not governors or set(governors) == {"performance"}
    gpu_ok = gpu is None or gpu.get("governor") == "performance" or (
        gpu.get("min_mhz") is not None and gpu.get("min_mhz") == gpu.get("max_mhz"))
    return cpu_ok and gpu_ok


def jetson_state(root: str = "/", nvpmodel: Callable[[], Optional[str]] = None) -> Optional[Dict[str, object]]:
    """On a Jetson (``root/etc/nv_tegra_release`` exists): L4T, board, ``nvpmodel -q`` mode, GPU devfreq and
    whether clocks are locked; None elsewhere."""
    from ..doctor.jetson import jetson_facts, run_nvpmodel

    if not os.path.exists(os.path.join(root, "etc", "nv_tegra_release")):
        return None
    facts = jetson_facts(root, (nvpmodel or run_nvpmodel)())
    if facts is None:
        return None
    gpu = gpu_devfreq(os.path.join(root, "sys", "class", "devfreq"))
    governors = cpu_governors(os.path.join(root, "sys", "devices", "system", "cpu"))
    return {"l4t": facts.get("l4t"), "jetpack": facts.get("jetpack"), "model": facts.get("model"),
            "power_mode": facts.get("power_mode"), "power_mode_id": facts.get("power_mode_id"), "gpu": gpu,
            "clocks_locked": clocks_locked(governors, gpu)}


def snapshot(root: str = "/", nvpmodel: Callable[[], Optional[str]] = None) -> Dict[str, object]:
    """The state to record with a measurement: load average, CPU governors, and the Jetson's state (or None)."""
    return {"load_average": load_average(os.path.join(root, "proc", "loadavg")),
            "cpu_governor": cpu_governors(os.path.join(root, "sys", "devices", "system", "cpu")),
            "jetson": jetson_state(root, nvpmodel)}


def warnings_for(state: Dict[str, object]) -> List[str]:
    """What a reader of the result must know: clocks not locked on a Jetson, a busy machine."""
    found = []
    jetson = state.get("jetson")
    if jetson and jetson.get("clocks_locked") is False:
        found.append("Jetson clocks are not locked (latencies move with DVFS): run `sudo jetson_clocks` and "
                     "`sudo nvpmodel -m 0` first")
    load, cores = state.get("load_average"), os.cpu_count() or 1
    if load and load[0] > 0.5 * cores:
        found.append(f"the machine was busy: load average {load[0]:.2f} on {cores} cores (other work shares the CPU)")
    return found


def state_text(state: Dict[str, object]) -> str:
    """One line: ``load 0.52/0.61/0.40, governor performance x2 (Jetson: MAXN, clocks locked)``."""
    load = state.get("load_average")
    gov = state.get("cpu_governor") or {}
    parts = [f"load {'/'.join(f'{v:.2f}' for v in load)}" if load else "load unknown",
             "governor " + (", ".join(f"{k} x{n}" for k, n in gov.items()) if gov else "unknown (no cpufreq)")]
    jetson = state.get("jetson")
    if jetson:
        locked = {True: "clocks locked", False: "clocks NOT locked", None: "clocks unknown"}[jetson.get("clocks_locked")]
        parts.append(f"Jetson {jetson.get('power_mode') or '?'} mode, {locked}")
    return ", ".join(parts)


def gpu_name(backend: str) -> Optional[str]:
    """The GPU a GPU backend ran on, or None for CPU backends or when none is visible: the CUDA driver's name for
    it under TensorRT (no torch needed), torch's under torch-cuda."""
    if backend == "trt":
        from ..runners.gpu_info import gpu_info
        from ..runners.trt_env import UNKNOWN

        name = gpu_info()[0]
        return None if name == UNKNOWN else name
    if backend != "torch-cuda":
        return None
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        return None


def parse_tegrastats_power(line: str) -> Optional[float]:
    """The board's input power in mW from one ``tegrastats`` line (``VDD_IN 4996mW/5012mW`` on Orin,
    ``POM_5V_IN 3000/3100`` before), the instantaneous value; None if the line has no such rail."""
    for rail in TEGRASTATS_RAILS:
        match = re.search(rf"\b{rail} (\d+)(?:mW)?/(\d+)", line)
        if match:
            return float(match.group(1))
    return None


class PowerSampler:
    """Average board power over a block, from ``tegrastats`` (a Jetson's); ``watts`` None where there is none.

    ``with PowerSampler() as power: measure(); power.watts``. The tegrastats process is stopped on exit.
    """

    def __init__(self, interval_ms: int = 100, which=shutil.which, popen=subprocess.Popen) -> None:
        self.interval_ms, self.which, self.popen = interval_ms, which, popen
        self.samples: List[float] = []
        self._proc = None
        self._reader: Optional[threading.Thread] = None

    def __enter__(self) -> "PowerSampler":
        path = self.which("tegrastats")
        if path is not None:
            try:
                self._proc = self.popen([path, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
            except OSError:
                self._proc = None
        if self._proc is not None:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            mw = parse_tegrastats_power(line)
            if mw is not None:
                self.samples.append(mw)

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)

    @property
    def watts(self) -> Optional[float]:
        return round(sum(self.samples) / len(self.samples) / 1e3, 3) if self.samples else None
