"""pyproject.toml's promises: the base install is the device side, the extras never put a CUDA 13 or desktop stack
on a Jetson, the workstation side installs only on Python >= 3.10, and the metadata builds on Python 3.8."""

from __future__ import annotations

import glob
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the checks are about the file, not this interpreter
from packaging.requirements import Requirement  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
FORBIDDEN_ON_DEVICE = {"torch", "timm", "torchvision", "safetensors", "onnxsim", "onnxscript"}


def env(python="3.10", machine="x86_64", extra=""):
    return {"python_version": python, "python_full_version": python + ".0", "platform_machine": machine,
            "sys_platform": "linux", "extra": extra}


def applies(req: Requirement, environment: dict) -> bool:
    return req.marker is None or req.marker.evaluate(environment)


def extra(name: str) -> list:
    return [Requirement(text) for text in PROJECT["project"]["optional-dependencies"][name]]


def test_base_install_is_the_device_side():
    base = {Requirement(text).name for text in PROJECT["project"]["dependencies"]}
    assert base == {"numpy", "onnx", "tqdm"}  # tqdm: run's progress bar, pure Python
    assert PROJECT["project"]["requires-python"] == ">=3.8"
    numpy = next(Requirement(t) for t in PROJECT["project"]["dependencies"] if t.startswith("numpy"))
    # JetPack 6's numpy 1.21.5 and 7's 1.26.4 satisfy it, and so does any numpy 2
    assert all(numpy.specifier.contains(v) for v in ("1.21.5", "1.26.4", "2.4.6"))


def test_build_requirements_exist_for_python_3_8():
    (setuptools,) = [Requirement(t) for t in PROJECT["build-system"]["requires"]]
    assert setuptools.specifier.contains("75.3.0")  # the last setuptools for Python 3.8
    assert not setuptools.specifier.contains("77.0.0")  # 77+ wants the SPDX license string 3.8 cannot build
    assert isinstance(PROJECT["project"]["license"], dict)


def test_workstation_extra_installs_only_on_python_3_10_and_newer():
    reqs = extra("export")
    assert {r.name for r in reqs} >= FORBIDDEN_ON_DEVICE
    assert [r.name for r in reqs if applies(r, env("3.8", extra="export"))] == []
    assert all(applies(r, env("3.10", extra="export")) for r in reqs)


def test_trt_extra_never_reaches_a_jetson_or_cuda_13():
    for name in ("trt", "trt-cu13"):
        assert [r.name for r in extra(name) if applies(r, env(machine="aarch64", extra=name))] == [], name
    trt = {r.name: r.specifier for r in extra("trt")}
    assert set(trt) == {"tensorrt-cu12", "cuda-python"}  # never plain `tensorrt` (11.x resolves to CUDA 13 libraries)
    assert trt["cuda-python"].contains("12.6.0") and not trt["cuda-python"].contains("13.0.0")
    cu13 = {r.name: r.specifier for r in extra("trt-cu13")}
    assert cu13["cuda-python"].contains("13.0.3") and not cu13["cuda-python"].contains("12.9.0")


def test_dev_extra_is_the_whole_workstation():
    (own,) = [r for r in extra("dev") if r.name == "tdm-edge"]
    assert own.extras == {"export", "ort", "camera", "plots"}
    assert {r.name for r in extra("dev")} >= {"pytest", "pytest-timeout"}


def test_jetpack_constraints_keep_numpy_1():
    for path in sorted((REPO / "constraints").glob("jetpack-*.txt")):
        pins = {Requirement(line.split("#")[0]).name: Requirement(line.split("#")[0]).specifier
                for line in path.read_text().splitlines() if line.split("#")[0].strip()}
        assert not pins["numpy"].contains("2.0.0"), path.name
        assert "onnx" in pins and not (set(pins) & {"torch", "tensorrt", "opencv-python"}), path.name


@pytest.mark.network
@pytest.mark.slow
def test_metadata_builds_with_python_3_8(tmp_path):
    pyenv = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.8*/bin/python")))  # before pyenv's shims
    python = pyenv[-1] if pyenv else shutil.which("python3.8")
    if python is None:
        pytest.skip("no Python 3.8 on this machine")
    done = subprocess.run([python, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and any(m in done.stderr for m in ("NewConnectionError", "Max retries exceeded")):
        pytest.skip(f"the package registry cannot be reached: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("tdm_edge-*.whl")
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Python: >=3.8" in metadata and "License: Apache-2.0" in metadata
    requires = [Requirement(line.split(":", 1)[1]) for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    assert {r.name for r in requires if r.marker is None} == {"numpy", "onnx", "tqdm"}
