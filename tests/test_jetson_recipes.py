"""The JetPack recipes (constraints/jetpack-*.txt, docs/jetson.md) resolve, and keep the JetPack's own stack.

For each recipe pip resolves tdm-edge plus the recipe's CUDA binding as the Jetson would (``--dry-run
--only-binary=:all:`` for aarch64, the JetPack's Python and glibc), and its ``--report`` is checked: no torch,
torchvision, OpenCV or TensorRT wheel and no CUDA libraries from the registry, numpy stays 1.x (JetPack's OpenCV is
built for numpy 1.x), every numpy requirement admits the JetPack's own numpy where the recipe keeps it, and
cuda-python's major version is the JetPack's CUDA major. Needs the package registry: skipped, with the reason,
without it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
NETWORK_ERRORS = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                  "Network is unreachable", "ProxyError", "ConnectTimeout", "ConnectionError", "ReadTimeoutError")
# distributions that must come from JetPack (or not at all), never from the registry
NOT_FROM_PIP = re.compile(r"^(torch|torchvision|tensorrt|opencv-|nvidia-|pycuda$)")


class Recipe(NamedTuple):
    python: str
    glibc: int  # the Ubuntu release's glibc minor: 2.31 (20.04), 2.35 (22.04), 2.39 (24.04)
    system_numpy: str
    keeps_numpy: bool  # whether JetPack's numpy stays (every numpy requirement admits it)
    binding: Optional[str]  # resolved as a wheel beside tdm-edge (pycuda builds on the Jetson: not here)
    cuda_major: Optional[int]


RECIPES = {
    "jetpack-5.1.txt": Recipe("3.8", 31, "1.17.4", False, None, None),
    "jetpack-6.0.txt": Recipe("3.10", 35, "1.21.5", True, "cuda-python", 12),
    "jetpack-6.1.txt": Recipe("3.10", 35, "1.21.5", True, "cuda-python", 12),
    "jetpack-7.txt": Recipe("3.12", 39, "1.26.4", True, "cuda-python", 13),
}


def test_every_recipe_is_documented_and_known_to_doctor():
    from tdm_edge.doctor import jetson

    files = sorted(p.name for p in (REPO / "constraints").glob("jetpack-*.txt"))
    assert files == sorted(RECIPES)
    assert sorted(set(jetson.BINDINGS)) == files
    docs, readme = (REPO / "docs" / "jetson.md").read_text(), (REPO / "README.md").read_text()
    for name in files:
        assert f"constraints/{name}" in docs and f"constraints/{name}" in readme, name


def platforms(glibc: int) -> list:
    return ["--platform=manylinux2014_aarch64"] + [f"--platform=manylinux_2_{n}_aarch64" for n in range(17, glibc + 1)]


def resolve(recipe_file: str, recipe: Recipe, tmp_path: Path) -> dict:
    """pip's ``--report`` of resolving the recipe for its Jetson; skips when the registry cannot be reached."""
    report = tmp_path / "report.json"
    extra = [recipe.binding] if recipe.binding else []
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
            *platforms(recipe.glibc), f"--python-version={recipe.python}", "--implementation=cp",
            f"--target={tmp_path / 'target'}", f"--report={report}", "--quiet", "--retries=1", "--timeout=30",
            "-c", str(REPO / "constraints" / recipe_file), str(REPO), *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        if any(marker in done.stderr for marker in NETWORK_ERRORS):
            pytest.skip(f"the package registry cannot be reached: {done.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"{recipe_file} does not resolve:\n{done.stderr[-3000:]}")
    return json.loads(report.read_text())


def numpy_requirements(item: dict, python: str) -> list:
    """The numpy specifiers an installed item asks for (markers evaluated for this Python, no extras)."""
    from packaging.requirements import Requirement

    found = []
    for text in item["metadata"].get("requires_dist", []):
        req = Requirement(text)
        if req.name.lower() != "numpy":
            continue
        if req.marker is None or req.marker.evaluate({"python_version": python, "python_full_version": python + ".0",
                                                      "platform_machine": "aarch64", "sys_platform": "linux",
                                                      "extra": ""}):
            found.append(req.specifier)
    return found


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("recipe_file", sorted(RECIPES))
def test_recipe_resolves_and_keeps_the_jetpack_stack(recipe_file, tmp_path):
    recipe = RECIPES[recipe_file]
    installed = {item["metadata"]["name"].lower().replace("_", "-"): item
                 for item in resolve(recipe_file, recipe, tmp_path)["install"]}
    version = {name: item["metadata"]["version"] for name, item in installed.items()}
    assert "tdm-edge" in version and "onnx" in version
    assert [name for name in version if NOT_FROM_PIP.match(name)] == []
    assert int(version["numpy"].split(".")[0]) < 2
    if recipe.keeps_numpy:  # JetPack's numpy satisfies everything, so pip leaves it in place on the Jetson
        for name, item in installed.items():
            for spec in numpy_requirements(item, recipe.python):
                assert spec.contains(recipe.system_numpy, prereleases=True), (name, str(spec))
    if recipe.cuda_major is None:
        assert "cuda-python" not in version and "cuda-bindings" not in version
    else:
        for name in ("cuda-python", "cuda-bindings"):
            if name in version:
                assert int(version[name].split(".")[0]) == recipe.cuda_major, (name, version[name])
        assert "cuda-python" in version
