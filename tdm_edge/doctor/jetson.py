"""The Jetson's own facts: L4T release and JetPack, board, power mode and clocks; each a small reader of text.

Sources: ``/etc/nv_tegra_release`` (``# R35 (release), REVISION: 4.1, GCID: ..., BOARD: t186ref, EABI: aarch64,
DATE: ...``), ``/proc/device-tree/model``, ``nvpmodel -q`` and the devfreq/cpufreq files in sysfs. The L4T to
JetPack table is NVIDIA's (JetPack archive); a release not in it is named by its JetPack major only.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

TEGRA_RELEASE = "/etc/nv_tegra_release"

# (L4T major, revision prefix) -> JetPack release; the longest matching revision prefix wins
_JETPACK = {
    (35, "1"): "5.0.2", (35, "2"): "5.1", (35, "3"): "5.1.1", (35, "4"): "5.1.2", (35, "5"): "5.1.3",
    (35, "6.0"): "5.1.4", (35, "6.1"): "5.1.5",
    (36, "2"): "6.0 DP", (36, "3"): "6.0", (36, "4.0"): "6.1", (36, "4.3"): "6.2", (36, "4.4"): "6.2.1",
    (38, "2"): "7.0",
}
_JETPACK_MAJOR = {32: "4", 34: "5 DP", 35: "5", 36: "6", 38: "7"}

# L4T release -> the constraint file of its recipe (constraints/ in the repository, docs/jetson.md)
_RECIPES = ((35, "", "jetpack-5.1.txt"), (36, "2", "jetpack-6.0.txt"), (36, "3", "jetpack-6.0.txt"),
            (36, "", "jetpack-6.1.txt"), (38, "", "jetpack-7.txt"))

# what each recipe's CUDA binding is (JetPack 5: CUDA 11.4, for which cuda-python has no aarch64 wheel)
BINDINGS = {"jetpack-5.1.txt": "pycuda", "jetpack-6.0.txt": "cuda-python", "jetpack-6.1.txt": "cuda-python",
            "jetpack-7.txt": "cuda-python"}


def parse_tegra_release(text: str) -> Optional[Dict[str, object]]:
    """``{"l4t": "R35.4.1", "major": 35, "revision": "4.1", "board": "t186ref"}`` from ``nv_tegra_release``'s text.

    ``None`` when the text is not in that format.
    """
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not match:
        return None
    board = re.search(r"BOARD:\s*([\w.-]+)", text)
    major, revision = int(match.group(1)), match.group(2).rstrip(".")
    return {"l4t": f"R{major}.{revision}", "major": major, "revision": revision,
            "board": board.group(1) if board else None}


def _by_prefix(table, major: int, revision: str):
    """The value of the longest ``(major, prefix)`` key whose prefix starts ``revision`` (dot-aligned), or None."""
    best, value = -1, None
    for (key_major, prefix), item in table:
        aligned = revision == prefix or revision.startswith(prefix + ".") or prefix == ""
        if key_major == major and aligned and len(prefix) > best:
            best, value = len(prefix), item
    return value


def jetpack_of(major: int, revision: str) -> Optional[str]:
    """``(35, "4.1")`` -> ``"5.1.2"``; an L4T release not in the table -> ``"5.x"``; not a JetPack L4T -> None."""
    known = _by_prefix(_JETPACK.items(), major, revision)
    if known:
        return known
    return f"{_JETPACK_MAJOR[major]}.x" if major in _JETPACK_MAJOR else None


def recipe_of(major: int, revision: str) -> Optional[str]:
    """The constraint file for this L4T release (``constraints/jetpack-6.1.txt``'s name), None if unsupported."""
    return _by_prefix((((m, p), r) for m, p, r in _RECIPES), major, revision)


def parse_nvpmodel(text: str) -> Optional[Tuple[str, Optional[int]]]:
    """``("MAXN", 0)`` from ``nvpmodel -q`` (``NV Power Mode: MAXN`` then the mode's number); None if absent."""
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
            number = next((int(x) for x in lines[i + 1:i + 2] if x.isdigit()), None)
            return name, number
    return None


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def gpu_devfreq_node(devfreq: str = "/sys/class/devfreq") -> Optional[str]:
    """The Jetson GPU's devfreq folder under ``devfreq``, named after the GPU (``17000000.ga10b`` on Orin,
    ``.gv11b`` on Xavier, ``57000000.gpu``...), or None."""
    nodes = [d for d in sorted(glob.glob(os.path.join(devfreq, "*")))
             if re.search(r"(gv11b|ga10b|gp10b|gb10b|gpu)$", os.path.basename(d))]
    return nodes[0] if nodes else None


def read_clocks(root: str = "/") -> Dict[str, Optional[int]]:
    """GPU and CPU (cpu0) clocks in MHz, now and at most: ``{"gpu_mhz", "gpu_max_mhz", "cpu_mhz", "cpu_max_mhz"}``.

    The GPU's devfreq node is named after the GPU (``17000000.ga10b`` on Orin, ``.gv11b`` on Xavier; Hz); cpufreq
    gives kHz. ``root`` is ``/`` or, in the tests, a folder laid out like it. Missing files give None.
    """
    gpu = gpu_devfreq_node(os.path.join(root, "sys/class/devfreq"))
    cpu = os.path.join(root, "sys/devices/system/cpu/cpu0/cpufreq")

    def mhz(path: str, scale: int) -> Optional[int]:
        value = _read_int(path)
        return None if value is None else round(value / scale)

    return {"gpu_mhz": mhz(os.path.join(gpu, "cur_freq"), 1000000) if gpu else None,
            "gpu_max_mhz": mhz(os.path.join(gpu, "max_freq"), 1000000) if gpu else None,
            "cpu_mhz": mhz(os.path.join(cpu, "scaling_cur_freq"), 1000),
            "cpu_max_mhz": mhz(os.path.join(cpu, "cpuinfo_max_freq"), 1000)}


def read_text(path: str) -> Optional[str]:
    """A small text file's content (device-tree strings end in NUL), or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode(errors="replace").strip("\0\n ")
    except OSError:
        return None


def run_nvpmodel(which=shutil.which, run=subprocess.run) -> Optional[str]:
    """``nvpmodel -q``'s output, or None without nvpmodel (not a Jetson) or when it fails within 5 s."""
    path = which("nvpmodel")
    if path is None:
        return None
    try:
        done = run([path, "-q"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def jetson_facts(root: str = "/", nvpmodel_text: Optional[str] = None) -> Optional[Dict[str, object]]:
    """Everything above for a Jetson (``root`` holds ``etc/nv_tegra_release``), or None when it is not one.

    Args:
        root: ``/``, or a folder laid out like it (tests).
        nvpmodel_text: ``nvpmodel -q``'s output (None: not available).
    """
    text = read_text(os.path.join(root, TEGRA_RELEASE.lstrip("/")))
    release = parse_tegra_release(text) if text else None
    if release is None:
        return None
    major, revision = int(release["major"]), str(release["revision"])
    power = parse_nvpmodel(nvpmodel_text) if nvpmodel_text else None
    facts: Dict[str, object] = dict(release)
    facts.update(jetpack=jetpack_of(major, revision), recipe=recipe_of(major, revision),
                 model=read_text(os.path.join(root, "proc/device-tree/model")),
                 power_mode=power[0] if power else None, power_mode_id=power[1] if power else None)
    facts.update(read_clocks(root))
    return facts


def clocks_line(facts: Dict[str, object]) -> List[str]:
    """``["GPU 1300/1300 MHz", "CPU 2201/2201 MHz"]`` for the clocks that were read."""
    parts = []
    for name in ("gpu", "cpu"):
        now, top = facts.get(f"{name}_mhz"), facts.get(f"{name}_max_mhz")
        if now is not None:
            parts.append(f"{name.upper()} {now}/{top if top is not None else '?'} MHz")
    return parts
