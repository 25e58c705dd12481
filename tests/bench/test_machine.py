"""The machine's state recorded with every bench result, read from stand-in files laid out like /proc, /sys and /etc
(a Jetson Orin's, a VM's without cpufreq), and tegrastats lines as Orin and Nano print them."""

import io
import subprocess

import pytest

from tdm_edge.bench import machine

ORIN_TEGRASTATS = ("12-04-2026 03:00:00 RAM 2448/7620MB (lfb 2x4MB) CPU [12%@1510,5%@1510] GR3D_FREQ 0% "
                   "cpu@47.5C VDD_IN 5012mW/4996mW VDD_CPU_GPU_CV 1039mW/1039mW VDD_SOC 1439mW/1439mW")
NANO_TEGRASTATS = "RAM 1500/3956MB CPU [4%@102,off,off,off] GR3D_FREQ 0%@76 POM_5V_IN 1854/1900 POM_5V_GPU 0/0"


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture()
def orin(tmp_path):
    _write(tmp_path, "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, "
                                             "EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n")
    _write(tmp_path, "proc/loadavg", "0.52 0.61 0.40 1/321 4242\n")
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Orin Nano Developer Kit\0")
    for cpu in range(6):
        _write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "performance\n")
    gpu = "sys/class/devfreq/17000000.ga10b/"
    for name, value in (("governor", "nvhost_podgov"), ("cur_freq", "624750000"), ("min_freq", "306000000"),
                        ("max_freq", "624750000")):
        _write(tmp_path, gpu + name, value + "\n")
    return tmp_path


def test_load_and_governors_of_a_jetson_whose_gpu_clock_is_not_locked(orin):
    state = machine.snapshot(str(orin), nvpmodel=lambda: "NV Power Mode: 15W\n0\n")
    assert state["load_average"] == [0.52, 0.61, 0.40]
    assert state["cpu_governor"] == {"performance": 6}
    jetson = state["jetson"]
    assert jetson["l4t"] == "R35.4.1" and jetson["power_mode"] == "15W" and jetson["power_mode_id"] == 0
    assert jetson["gpu"] == {"node": "17000000.ga10b", "governor": "nvhost_podgov", "mhz": 625, "min_mhz": 306,
                             "max_mhz": 625}
    assert jetson["clocks_locked"] is False  # the GPU may still scale down (min < max, not "performance")
    assert any("jetson_clocks" in w for w in machine.warnings_for(state))
    assert machine.state_text(state) == ("load 0.52/0.61/0.40, governor performance x6, Jetson 15W mode, clocks NOT "
                                         "locked")


def test_jetson_clocks_locks_cpu_and_gpu(orin):
    _write(orin, "sys/class/devfreq/17000000.ga10b/min_freq", "624750000\n")  # what jetson_clocks does
    assert machine.snapshot(str(orin), nvpmodel=lambda: None)["jetson"]["clocks_locked"] is True
    _write(orin, "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor", "schedutil\n")
    state = machine.snapshot(str(orin), nvpmodel=lambda: None)
    assert state["cpu_governor"] == {"performance": 5, "schedutil": 1} and state["jetson"]["clocks_locked"] is False


def test_a_vm_without_cpufreq_records_load_and_no_jetson(tmp_path):
    _write(tmp_path, "proc/loadavg", "7.59 5.56 2.97 3/400 99\n")
    state = machine.snapshot(str(tmp_path))
    assert state == {"load_average": [7.59, 5.56, 2.97], "cpu_governor": {}, "jetson": None}
    assert machine.state_text(state) == "load 7.59/5.56/2.97, governor unknown (no cpufreq)"
    assert machine.snapshot(str(tmp_path / "nothing"))["load_average"] is None


def test_tegrastats_power_of_orin_and_nano_lines():
    assert machine.parse_tegrastats_power(ORIN_TEGRASTATS) == 5012.0
    assert machine.parse_tegrastats_power(NANO_TEGRASTATS) == 1854.0
    assert machine.parse_tegrastats_power("RAM 1500/3956MB CPU [4%@102]") is None


class _StandInTegrastats:
    """Stand-in for the tegrastats process (there is none off a Jetson): prints three lines, records terminate()."""

    def __init__(self, argv, **kwargs):
        self.argv = argv
        self.stdout = io.StringIO("\n".join([ORIN_TEGRASTATS.replace("5012mW", f"{w}mW") for w in (4000, 5000, 6000)]))
        self.terminated = False

    def terminate(self):
        self.terminated = True

    def wait(self, timeout=None):
        return 0


def test_power_sampler_averages_tegrastats_and_stops_it():
    started = []

    def popen(argv, **kwargs):
        started.append(_StandInTegrastats(argv, **kwargs))
        return started[-1]

    with machine.PowerSampler(which=lambda name: "/usr/bin/" + name, popen=popen) as power:
        pass
    assert started[0].argv == ["/usr/bin/tegrastats", "--interval", "100"] and started[0].terminated
    assert power.watts == 5.0
    with machine.PowerSampler(which=lambda name: None, popen=subprocess.Popen) as none:
        pass
    assert none.watts is None


def test_backend_versions_name_what_measured(monkeypatch):
    import onnxruntime

    from tdm_edge import __version__
    from tdm_edge.bench.files import versions
    from tdm_edge.runners import gpu_info

    recorded = versions("ort")  # what a bench result records (engine.versions.backend_versions, tested there)
    assert recorded["tdm-edge"] == __version__ and recorded["onnxruntime"] == onnxruntime.__version__
    assert machine.gpu_name("ort") is None
    monkeypatch.setattr(gpu_info, "gpu_info", lambda device=0: ("Orin", "8.7"))  # the driver names it, no torch
    assert machine.gpu_name("trt") == "Orin"
    monkeypatch.setattr(gpu_info, "gpu_info", lambda device=0: ("unknown", "unknown"))
    assert machine.gpu_name("trt") is None
