import json
import sys

from tdm_edge.doctor import report

from .stand_ins import NVPMODEL, TEGRA_R36, jetson_tree


def jetpack5(**changes):
    """The facts of a JetPack 5.1.2 Orin set up by docs/jetson.md's recipe, without onnxruntime or torch."""
    facts = {
        "tdm_edge": {"version": "0.1.0", "path": "/home/u/tdm-edge/tdm_edge"},
        "python": {"version": "3.8.10", "executable": "/home/u/venv/bin/python", "venv": True,
                   "system_site_packages": True},
        "numpy": {"version": "1.17.4", "path": "/usr/lib/python3/dist-packages/numpy/__init__.py",
                  "provider": "system (apt)", "error": None},
        "onnx": {"version": "1.15.0", "path": "/home/u/venv/lib/python3.8/site-packages/onnx/__init__.py"},
        "onnxruntime": {"version": None, "path": None},
        "opencv": {"version": "4.5.4", "path": "/usr/lib/python3.8/dist-packages/cv2/python-3.8/cv2.so",
                   "error": None, "installed": True, "provider": "system (apt)", "gstreamer": "YES (1.16.3)",
                   "ffmpeg": "YES", "shadowed": [], "pip_distributions": []},
        "tensorrt": {"version": "8.5.2.2", "path": "/usr/lib/python3.8/dist-packages/tensorrt/__init__.py",
                     "provider": "system (apt)", "error": None, "usable": True},
        "cuda": {"driver": {"driver": "11.4", "gpu": "Orin", "compute_capability": "8.7", "error": None},
                 "cuda_python": {"version": None, "error": "not installed", "runtime": None, "driver": None,
                                 "matches": False},
                 "pycuda": {"version": "2024.1.2", "error": None, "built_for": "11.4", "driver": "11.4"},
                 "auto": "pycuda"},
        "jetson": {"l4t": "R35.4.1", "major": 35, "revision": "4.1", "board": "t186ref", "jetpack": "5.1.2",
                   "recipe": "jetpack-5.1.txt", "model": "NVIDIA Jetson AGX Orin Developer Kit",
                   "power_mode": "MAXN", "power_mode_id": 0, "gpu_mhz": 1300, "gpu_max_mhz": 1300,
                   "cpu_mhz": 2202, "cpu_max_mhz": 2202},
        "plugin": "/home/u/tdm-edge/build/tdm_merge/libtdm_merge_plugin.so",
        "workstation": {"torch": None, "timm": None},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            facts[section] = dict(facts[section], **{field: value})
        else:
            facts[section] = value
    return facts


def by_command(facts):
    return {v.command: v for v in report.verdicts(facts)}


def test_jetpack5_device_install():
    v = by_command(jetpack5())
    for ready in ("check MODEL.onnx", "build MODEL.onnx", "build MODEL.onnx --plugins libtdm_merge_plugin.so",
                  "run VIDEO --model MODEL.engine", "run csi://0 --model MODEL.engine", "bench --model MODEL.engine"):
        assert v[ready].ok and v[ready].fix is None, ready
    assert not v["run VIDEO --model MODEL.onnx --backend ort"].ok
    assert v["bench --model MODEL.onnx (ONNX Runtime)"].fix.startswith("pip install onnxruntime")
    # Python 3.8: the workstation side says so, whatever is installed
    assert "needs Python >= 3.10 (this is 3.8.10)" in v["export / flops / models"].fix
    assert v["calibrate"].fix == v["export / flops / models"].fix


def test_jetpack6_venv_without_system_site_packages_cannot_see_tensorrt():
    facts = jetpack5(python__version="3.10.12", python__system_site_packages=False,
                     tensorrt={"version": None, "path": None, "provider": None, "error": "not installed",
                               "usable": False},
                     jetson=dict(jetpack5()["jetson"], l4t="R36.4.3", major=36, revision="4.3", jetpack="6.2",
                                 recipe="jetpack-6.1.txt"))
    v = by_command(facts)
    assert v["build MODEL.onnx"].fix == ("sudo apt install python3-libnvinfer; this venv cannot see it: recreate it "
                                         "with python3 -m venv --system-site-packages")
    assert v["check MODEL.onnx"].ok
    assert v["export / flops / models"].fix == ("needs torch, timm: pip install 'tdm-edge[export]' (on a Jetson: "
                                                "NVIDIA's torch wheel first, see docs/jetson.md)")


def test_cuda_python_newer_than_the_driver_gets_the_matching_range_from_the_recipe():
    cuda = dict(jetpack5()["cuda"], auto=None,
                cuda_python={"version": "13.0.3", "error": None, "runtime": "13.0", "driver": "12.6",
                             "matches": False},
                pycuda={"version": None, "error": "not installed", "built_for": None, "driver": None})
    jet = dict(jetpack5()["jetson"], major=36, revision="4.3", recipe="jetpack-6.1.txt")
    v = by_command(jetpack5(cuda=cuda, jetson=jet))
    assert v["run VIDEO --model MODEL.engine"].fix == (
        "cuda-python 13.0.3 binds CUDA 13.0, newer than this driver's 12.6: "
        "pip install -c constraints/jetpack-6.1.txt 'cuda-python>=12,<13'")
    assert v["bench --model MODEL.engine"].fix == v["run VIDEO --model MODEL.engine"].fix
    assert v["build MODEL.onnx"].ok  # building needs no CUDA binding


def test_jetpack5_without_a_binding_is_told_to_build_pycuda():
    cuda = dict(jetpack5()["cuda"], auto=None,
                pycuda={"version": None, "error": "not installed", "built_for": None, "driver": None})
    fix = by_command(jetpack5(cuda=cuda))["run VIDEO --model MODEL.engine"].fix
    assert fix.startswith("no CUDA binding: pip install pycuda") and "cuda-python has no aarch64 wheel" in fix


def test_a_pip_opencv_without_gstreamer_blocks_only_csi():
    cv = dict(jetpack5()["opencv"], gstreamer="NO", provider="pip (opencv-python)",
              pip_distributions=["opencv-python"])
    v = by_command(jetpack5(opencv=cv))
    assert v["run VIDEO --model MODEL.engine"].ok
    assert v["run csi://0 --model MODEL.engine"].fix.startswith(
        "this OpenCV has no GStreamer: use JetPack's (sudo apt install nvidia-opencv; pip uninstall opencv-python")


def test_a_broken_opencv_gives_its_reason_for_every_run_command():
    reason = "numpy 2.2.6 is installed but this OpenCV was built for numpy 1.x: pip install 'numpy<2' (...)"
    cv = {"version": None, "path": None, "error": reason, "installed": True, "shadowed": []}
    v = by_command(jetpack5(opencv=cv))
    assert [c for c, x in v.items() if x.fix == reason] == [
        "run VIDEO --model MODEL.onnx --backend ort", "run VIDEO --model MODEL.engine",
        "run csi://0 --model MODEL.engine"]
    assert v["bench --model MODEL.engine"].ok  # bench reads no camera


def test_missing_plugin_blocks_only_plugin_builds():
    v = by_command(jetpack5(plugin=None))
    assert v["build MODEL.onnx"].ok
    assert "cmake -S plugins/tdm_merge" in v["build MODEL.onnx --plugins libtdm_merge_plugin.so"].fix


def test_x86_workstation_is_pointed_at_the_trt_extra():
    facts = jetpack5(jetson=None, tensorrt={"version": None, "path": None, "provider": None,
                                            "error": "not installed", "usable": False},
                     python__version="3.11.7", workstation={"torch": "/v/torch/__init__.py", "timm": "/v/timm"})
    v = by_command(facts)
    assert v["build MODEL.onnx"].fix.startswith("TensorRT is not installed: pip install 'tdm-edge[trt]'")
    assert v["run csi://0 --model MODEL.engine"].fix == "csi:// cameras are a Jetson's (nvarguscamerasrc)"
    assert v["export / flops / models"].ok and v["train / eval"].ok
    assert v["calibrate"].fix == "needs onnxruntime: pip install 'tdm-edge[export]'"


def test_the_screen_fits_and_names_what_a_bug_report_needs():
    facts = jetpack5(plugin=None)
    screen = report.render(facts, report.verdicts(facts))
    lines = screen.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 160
    for needed in ("3.8.10  /home/u/venv/bin/python (venv, system site-packages yes)",
                   "1.17.4  /usr/lib/python3/dist-packages/numpy/__init__.py, system (apt)",
                   "GStreamer: YES (1.16.3), FFmpeg: YES",
                   "driver: CUDA 11.4; GPU: Orin (compute 8.7)",
                   "--cuda auto uses: pycuda",
                   "L4T R35.4.1 = JetPack 5.1.2, board t186ref, NVIDIA Jetson AGX Orin Developer Kit",
                   "recipe: constraints/jetpack-5.1.txt",
                   "nvpmodel MAXN (mode 0); clocks GPU 1300/1300 MHz, CPU 2202/2202 MHz",
                   "  ok  check MODEL.onnx", "  no  run VIDEO --model MODEL.onnx --backend ort"):
        assert needed in screen, needed
    assert sum(line.startswith("  no  ") for line in lines) == sum(line.startswith("        fix: ") for line in lines)


def test_json_holds_the_facts_and_the_verdicts():
    facts = jetpack5()
    data = json.loads(json.dumps(report.as_json(facts, report.verdicts(facts))))
    assert data["facts"]["jetson"]["jetpack"] == "5.1.2"
    assert {c["command"]: c["ok"] for c in data["commands"]}["run VIDEO --model MODEL.onnx --backend ort"] is False


def test_gather_reads_a_stand_in_jetson_tree(tmp_path):
    root = jetson_tree(tmp_path / "root", TEGRA_R36)
    facts = report.gather(root=str(root), package_dir=str(tmp_path / "repo" / "tdm_edge"), cwd=str(tmp_path),
                          environ={})
    assert facts["jetson"]["jetpack"] == "6.2" and facts["jetson"]["recipe"] == "jetpack-6.1.txt"
    assert facts["jetson"]["power_mode"] is None  # nvpmodel is run only on the real root
    assert facts["python"]["executable"] == sys.executable
    assert facts["plugin"] is None
    assert NVPMODEL  # the stand-in text is exercised in test_jetson


def test_clocks_below_maximum_get_the_benchmark_advice():
    at_max = report.render(jetpack5(), report.verdicts(jetpack5()))
    assert "jetson_clocks" not in at_max
    slow = jetpack5(jetson__cpu_mhz=730)
    assert "before benchmarks, sudo nvpmodel -m 0 && sudo jetson_clocks" in report.render(slow, report.verdicts(slow))


def test_no_opencv_on_a_jetson_points_at_jetpacks_and_the_venv():
    cv = {"version": None, "path": None, "error": "OpenCV is needed ...", "installed": False, "shadowed": []}
    facts = jetpack5(opencv=cv, python__system_site_packages=False)
    fix = by_command(facts)["run VIDEO --model MODEL.engine"].fix
    assert fix == ("JetPack's OpenCV is not found (sudo apt install nvidia-opencv): this venv cannot see it, "
                   "recreate it with python3 -m venv --system-site-packages")
    assert "opencv       not installed" in report.render(facts, report.verdicts(facts))
    off_jetson = jetpack5(opencv=cv, jetson=None)
    assert by_command(off_jetson)["run VIDEO --model MODEL.engine"].fix == "OpenCV is needed ..."
