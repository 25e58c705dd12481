"""Every command that writes a file refuses the same bad output paths before any work, in one line, exit 2:
a device node, a directory, a missing folder and (without --force) a write-protected file, which stays as it was."""

from __future__ import annotations

import os
import stat

import pytest

from tdm_edge.cli import main
from tdm_edge.outputs import check_output_path
from tdm_edge.train.trained import demo_model_path

# (command line with OUT for the output path) -- every command with an output file; each fails on the path
# before loading a model, exporting or measuring
COMMANDS = {
    "export": ["export", "--checkpoint", str(demo_model_path()), "-o", "OUT"],
    "calibrate": ["calibrate", "MODEL", "-o", "OUT", "--synthetic", "4"],
    "run": ["run", "synthetic://?frames=2", "OUT", "--headless", "--model", "MODEL"],
    "tune": ["tune", "--target-fps", "30", "-o", "OUT", "--backend", "ort"],
}
SUFFIX = {"export": ".onnx", "calibrate": ".onnx", "run": ".mp4", "tune": ".onnx"}


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "demo.onnx"
    assert main(["export", "--checkpoint", str(demo_model_path()), "-o", str(path), "--no-verify"]) == 0
    return path


def _argv(command, out, model):
    return [str(out) if a == "OUT" else str(model) if a == "MODEL" else a for a in COMMANDS[command]]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_write_protected_output_is_refused_and_kept(command, tmp_path, demo_onnx, capsys):
    out = tmp_path / f"mine{SUFFIX[command]}"
    out.write_bytes(b"precious")
    out.chmod(0o444)
    capsys.readouterr()
    assert main(_argv(command, out, demo_onnx)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "write-protected" in errors[0] and "--force" in errors[0], err
    assert out.read_bytes() == b"precious" and stat.S_IMODE(out.stat().st_mode) == 0o444


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_device_node_output_is_refused(command, demo_onnx, capsys):
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null on this system")
    assert main(_argv(command, "/dev/null", demo_onnx)) == 2
    err = capsys.readouterr().err
    assert any(("not a regular file" in line or "must end in" in line or "is not a folder" in line)
               for line in err.splitlines()), err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device


def test_force_replaces_a_write_protected_file(tmp_path):
    out = tmp_path / "mine.onnx"
    out.write_bytes(b"old")
    out.chmod(0o444)
    assert check_output_path(out, suffix=".onnx", force=True) == out
    with pytest.raises(Exception, match="write-protected"):
        check_output_path(out, suffix=".onnx")
