import importlib.machinery

from tdm_edge.doctor import probe

from .stand_ins import (PIP_BUILD, FakeDriverLib, fake_cudart, fake_cv2, fake_module, fake_pycuda, importer)

JETSON_CV2 = "/usr/lib/python3.8/dist-packages/cv2/python-3.8/cv2.cpython-38-aarch64-linux-gnu.so"


def test_provider_tells_apt_from_pip():
    assert probe.provider("/usr/lib/python3/dist-packages/numpy/__init__.py") == "system (apt)"
    assert probe.provider(JETSON_CV2) == "system (apt)"
    assert probe.provider("/usr/local/lib/python3.8/dist-packages/cv2/__init__.py").startswith("pip (system-wide")
    assert probe.provider("/home/u/venv/lib/python3.10/site-packages/numpy/__init__.py") == "pip"


def test_cv2_candidates_in_import_order(tmp_path):
    venv, system, empty = tmp_path / "venv", tmp_path / "dist-packages", tmp_path / "empty"
    (venv / "cv2").mkdir(parents=True)
    system.mkdir()
    (system / "cv2.cpython-38-aarch64-linux-gnu.so").write_bytes(b"")
    empty.mkdir()
    paths = [str(empty), str(venv), str(tmp_path / "missing"), str(system)]
    assert probe.cv2_candidates(paths) == [str(venv / "cv2"), str(system / "cv2.cpython-38-aarch64-linux-gnu.so")]


def test_opencv_facts_system_build_with_gstreamer():
    cv2 = fake_cv2(JETSON_CV2)
    facts = probe.opencv_facts(importer({"cv2": cv2}), paths=[], distribution_location=lambda name: None)
    assert facts["provider"] == "system (apt)" and facts["version"] == "4.5.4"
    assert facts["gstreamer"] == "YES (1.16.3)" and facts["ffmpeg"] == "YES"
    assert facts["shadowed"] == [] and facts["error"] is None


def test_a_pip_opencv_shadowing_the_system_one_is_named(tmp_path):
    venv = tmp_path / "site-packages"
    (venv / "cv2").mkdir(parents=True)
    system = tmp_path / "dist-packages"
    system.mkdir()
    (system / "cv2.cpython-38-aarch64-linux-gnu.so").write_bytes(b"")
    cv2 = fake_cv2(str(venv / "cv2" / "__init__.py"), build=PIP_BUILD, version="4.10.0")
    located = {"opencv-python": str(venv)}
    facts = probe.opencv_facts(importer({"cv2": cv2}), paths=[str(venv), str(system)],
                               distribution_location=located.get)
    assert facts["provider"] == "pip (opencv-python)" and facts["gstreamer"] == "NO"
    assert facts["shadowed"] == [str(system / "cv2.cpython-38-aarch64-linux-gnu.so")]
    assert facts["pip_distributions"] == ["opencv-python"]


def test_opencv_that_fails_to_import_says_why(tmp_path):
    numpy2 = ImportError("numpy.core.multiarray failed to import")
    facts = probe.opencv_facts(importer({"cv2": numpy2}), paths=[], distribution_location=lambda name: None)
    assert facts["version"] is None and "this OpenCV was built for" in facts["error"]
    missing = ImportError("libGL.so.1: cannot open shared object file: No such file or directory")
    facts = probe.opencv_facts(importer({"cv2": missing}), paths=[], distribution_location=lambda name: None)
    assert "libGL.so.1 is missing (sudo apt install libgl1" in facts["error"]


def test_module_facts_tell_missing_from_broken():
    assert probe.module_facts("tensorrt", importer({}))["error"] == "not installed"
    broken = ImportError("libnvinfer.so.8: cannot open shared object file", name="tensorrt.tensorrt")
    assert probe.module_facts("tensorrt", importer({"tensorrt": broken}))["error"].startswith(
        "ImportError: libnvinfer.so.8")


def test_tensorrt_usable_from_8_5():
    trt = lambda version: importer({"tensorrt": fake_module("tensorrt", __version__=version,  # noqa: E731
                                                            __file__="/usr/lib/python3.8/dist-packages/tensorrt/x.so")})
    assert probe.tensorrt_facts(trt("8.5.2.2"))["usable"] is True
    assert probe.tensorrt_facts(trt("8.4.1.5"))["usable"] is False
    facts = probe.tensorrt_facts(trt("10.3.0.30"))
    assert facts["usable"] is True and facts["provider"] == "system (apt)"
    assert probe.tensorrt_facts(importer({}))["usable"] is False


def test_driver_facts_through_a_stand_in_libcuda():
    assert probe.driver_facts(FakeDriverLib()) == {"driver": "11.4", "gpu": "Orin", "compute_capability": "8.7",
                                                   "error": None}
    facts = probe.driver_facts(FakeDriverLib(version=12060, init_error=100))
    assert facts["driver"] == "12.6" and facts["gpu"] is None and "no GPU" in facts["error"]


def test_cuda_python_matches_only_a_driver_of_its_major_or_newer():
    versions = {"cuda-python": "12.6.2"}.get
    ok = probe.cuda_python_facts(importer({"cuda.bindings.runtime": fake_cudart(12060, 12060)}), versions)
    assert ok == {"version": "12.6.2", "error": None, "runtime": "12.6", "driver": "12.6", "matches": True}
    newer = probe.cuda_python_facts(importer({"cuda.cudart": fake_cudart(12020, 13000)}), versions)
    assert newer["matches"] is False and newer["runtime"] == "13.0" and newer["driver"] == "12.2"
    absent = probe.cuda_python_facts(importer({}), lambda name: None)
    assert absent["error"] == "not installed" and absent["matches"] is False


def test_pycuda_facts_and_what_auto_picks():
    facts = probe.pycuda_facts(importer(fake_pycuda()))
    assert facts == {"version": "2024.1.2", "error": None, "built_for": "11.4", "driver": "11.4"}
    cuda_python_ok = {"error": None, "matches": True}
    cuda_python_newer = {"error": None, "matches": False}
    assert probe.auto_binding(cuda_python_ok, facts) == "cuda-python"
    assert probe.auto_binding(cuda_python_newer, facts) == "pycuda"
    assert probe.auto_binding(cuda_python_newer, {"error": "not installed"}) is None


def test_plugin_library_is_found_in_the_build_folder(tmp_path):
    build = tmp_path / "repo" / "build" / "tdm_merge"
    build.mkdir(parents=True)
    folders = probe.plugin_folders(str(tmp_path / "repo" / "tdm_edge"), str(tmp_path), {"LD_LIBRARY_PATH": "/opt/x:"})
    assert str(build) in folders and "/opt/x" in folders
    assert probe.find_plugin(folders) is None
    (build / probe.PLUGIN_LIBRARY).write_bytes(b"")
    assert probe.find_plugin(folders) == str(build / probe.PLUGIN_LIBRARY)


def test_workstation_packages_are_looked_up_not_imported():
    spec = importlib.machinery.ModuleSpec("torch", None, origin="/venv/torch/__init__.py")
    found = probe.workstation_facts(lambda name: spec if name == "torch" else None)
    assert found == {"torch": "/venv/torch/__init__.py", "timm": None}


def test_python_facts_read_the_venv_config(tmp_path):
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.8.10\n")
    facts = probe.python_facts(prefix=str(tmp_path), base_prefix="/usr")
    assert facts["venv"] is True and facts["system_site_packages"] is True
    assert probe.python_facts(prefix="/usr", base_prefix="/usr")["system_site_packages"] is None


def test_the_debian_package_of_a_system_module_is_named():
    class Done:
        returncode, stdout = 0, f"libopencv-python: {JETSON_CV2}\n"

    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return Done()

    assert probe.dpkg_owner(JETSON_CV2, which=lambda name: "/usr/bin/dpkg", run=run) == "libopencv-python"
    assert calls == [["dpkg", "-S", JETSON_CV2]]
    assert probe.dpkg_owner(JETSON_CV2, which=lambda name: None, run=run) is None
    facts = {"provider": "system (apt)", "path": JETSON_CV2}
    named = probe.name_apt_package(facts, lambda path: "libopencv-python")
    assert named["provider"] == "system (apt: libopencv-python)"
    pip = {"provider": "pip", "path": "/venv/cv2/__init__.py"}
    assert probe.name_apt_package(pip, lambda path: "never asked") == pip
