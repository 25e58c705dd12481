"""Output files: checked up front, written together or not at all, with the permissions the umask gives."""

import os
import stat

import pytest

from tdm_edge import outputs
from tdm_edge.errors import UsageError
from tdm_edge.outputs import check_output_path, sidecar_path, umask_mode, write_files


@pytest.fixture
def umask():
    """Set a umask for the test and put the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_files_get_the_umask_permissions_also_when_replacing(tmp_path, umask, mask, mode):
    old = tmp_path / "m.onnx"
    old.write_bytes(b"old")
    os.chmod(old, 0o600)
    umask(mask)
    assert umask_mode() == mode
    write_files({tmp_path / "m.json": b"{}", old: b"new"})
    assert _mode(old) == mode and _mode(tmp_path / "m.json") == mode
    assert old.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]  # no temporary file left


def _failing_second_replace(monkeypatch):
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)


def test_a_failed_write_puts_the_previous_files_back(tmp_path, monkeypatch):
    onnx, side = tmp_path / "m.onnx", tmp_path / "m.json"
    onnx.write_bytes(b"old model")
    side.write_bytes(b"old sidecar")
    _failing_second_replace(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        write_files({side: b"new sidecar", onnx: b"new model"})
    assert side.read_bytes() == b"old sidecar" and onnx.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]


def test_a_failed_first_write_leaves_no_file(tmp_path, monkeypatch):
    _failing_second_replace(monkeypatch)
    with pytest.raises(OSError):
        write_files({tmp_path / "m.json": b"{}", tmp_path / "m.onnx": b"model"})
    assert list(tmp_path.iterdir()) == []  # the sidecar written first was taken back: both or neither


def test_output_path_rules(tmp_path):
    (tmp_path / "d.onnx").mkdir()
    os.mkfifo(tmp_path / "p.onnx")
    (tmp_path / "f").write_text("x")
    for path, suffix, message in [(tmp_path / "m.txt", ".onnx", "must end in .onnx"),
                                  (tmp_path / "d.onnx", ".onnx", "is a directory"),
                                  (tmp_path / "p.onnx", ".onnx", "exists and is not a regular file"),
                                  (tmp_path / "no" / "m.onnx", ".onnx", "no does not exist"),
                                  (tmp_path / "f" / "m.onnx", ".onnx", "f is not a directory")]:
        with pytest.raises(UsageError, match=message):
            check_output_path(path, suffix)
    (tmp_path / "ok.onnx").write_bytes(b"a regular file may be replaced")
    assert check_output_path(tmp_path / "ok.onnx", ".onnx") == tmp_path / "ok.onnx"
    assert sidecar_path("a/b.onnx").as_posix() == "a/b.json" and sidecar_path("b").as_posix() == "b.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.onnx", "f", "ok.onnx", "p.onnx"]


def test_unwritable_directory_is_refused():
    """The command, run without root's override (as user nobody when the suite runs as root, as in CI), refuses a
    mode-0555 folder in one line, exit 2, before torch, and creates nothing in it."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from . import unprivileged

    folder = unprivileged.shared_folder()
    try:
        locked = folder / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)  # whatever the umask
        if os.geteuid() != 0 and os.access(locked, os.W_OK):
            pytest.skip("this user writes into a mode-0555 folder (CAP_DAC_OVERRIDE without root?)")
        argv = unprivileged.wrap([sys.executable, "-m", "tdm_edge.cli", "export", "-o", str(locked / "m.onnx")])
        if argv is None:
            pytest.skip("running as root and no setpriv, runuser or capsh to drop root's write override")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=folder, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"cannot write output {locked / 'm.onnx'}: Permission denied" in done.stderr, done.stderr
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o755)
        shutil.rmtree(folder)
