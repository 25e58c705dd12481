import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# the device side's forbidden packages made unimportable (sys.modules[name] = None), then tdm-edge doctor --json
BLOCKED = ("import sys; blocked = ('torch', 'timm', 'torchvision', 'safetensors', 'onnxsim', 'onnxscript'); "
           "sys.modules.update(dict.fromkeys(blocked)); from tdm_edge.cli import main; code = main(sys.argv[1:]); "
           "sys.stdout.flush(); "
           "print('LOADED', [m for m in blocked if sys.modules.get(m) is not None], file=sys.stderr); "
           "sys.exit(code)")


def doctor(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", BLOCKED, "doctor", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


def test_doctor_json_without_torch():
    done = doctor("--json")
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stderr
    data = json.loads(done.stdout)
    verdicts = {c["command"]: c for c in data["commands"]}
    # torch cannot be imported in that process, so the workstation commands need the export extra
    assert data["facts"]["workstation"] == {"torch": None, "timm": None}
    assert verdicts["export / flops / models"]["ok"] is False
    fix = "needs Python >= 3.10" if sys.version_info < (3, 10) else "needs torch, timm: pip install 'tdm-edge[export]'"
    assert fix in verdicts["export / flops / models"]["fix"]
    assert data["facts"]["python"]["executable"] == sys.executable


def test_doctor_screen():
    done = doctor()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tdm-edge doctor") and "commands:" in lines
    assert any(line.startswith("python       " + ".".join(map(str, sys.version_info[:3]))) for line in lines)
