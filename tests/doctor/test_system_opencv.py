"""The doctor against this machine's own system OpenCV (Debian's python3-opencv, built for numpy 1.x), when there is
one: a venv made with --system-site-packages sees it, then numpy 2 installed into the venv breaks it, as it breaks
JetPack's OpenCV on a Jetson, and the doctor names the cause. No stand-ins: real packages, real imports."""

from __future__ import annotations

import glob
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
SYSTEM_CV2 = glob.glob("/usr/lib/python3/dist-packages/cv2*")


def doctor(python: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = ("import sys; sys.modules.update(dict.fromkeys(('torch', 'timm'))); from tdm_edge.cli import main; "
            "sys.exit(main(['doctor', '--json']))")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(not (os.path.exists(SYSTEM_PYTHON) and SYSTEM_CV2), reason="no system (apt) OpenCV here")
def test_numpy_2_in_a_system_site_packages_venv_breaks_the_system_opencv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    seen = doctor(python)["facts"]["opencv"]
    if seen.get("error"):
        pytest.skip(f"the system OpenCV does not import here already: {seen['error']}")
    assert seen["provider"].startswith("system (apt") and seen["path"].startswith("/usr/lib/python3/dist-packages/")
    numpy_major = subprocess.run([str(python), "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                                 text=True, timeout=60).stdout.split(".")[0]
    if numpy_major != "1":
        pytest.skip("the system numpy is not 1.x")
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--retries=1", "numpy>=2"],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"numpy 2 could not be installed from the package registry: {done.stderr.strip()[-300:]}")
    data = doctor(python)
    broken = data["facts"]["opencv"]
    assert broken["version"] is None and broken["installed"] is True
    assert broken["error"].startswith("numpy 2.")
    assert "this OpenCV was built for numpy 1.x: pip install 'numpy<2'" in broken["error"]
    verdicts = {c["command"]: c for c in data["commands"]}
    assert verdicts["run VIDEO --model MODEL.onnx --backend ort"]["fix"] == broken["error"]
