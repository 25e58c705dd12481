"""The device commands, each in a fresh process where torch, timm, torchvision, safetensors, onnxsim and onnxscript
cannot be imported (tests/device/blocking.py): they succeed, or fail in one line, and none of those modules is ever
in sys.modules (the process would exit 99). The workstation commands there say in one line which extra to install.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .blocking import HELD, run_blocked

PRUNED_TOKENS = [65, 46, 33, 24]  # tests/device/fixtures.py: 32 px, 4 px patches, BAT 0.7


@pytest.fixture
def cli(tmp_path):
    def run(*args, timeout: float = 120):
        code, out, err = run_blocked(tmp_path / "site", [str(a) for a in args], cwd=tmp_path, timeout=timeout)
        assert code != 99 and HELD not in err, err
        assert "Traceback" not in err, err
        return code, out, err
    return run


def error_lines(err: str) -> list:
    """stderr without warnings and progress: what a failure says."""
    return [line for line in err.splitlines() if line.strip() and ": warning: " not in line]


def log_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_version(cli):
    from tdm_edge import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"tdm-edge {__version__}"


def test_check(cli, device_files):
    code, out, _ = cli("check", device_files / "pruned.onnx", "--trt", "8.5")
    assert code == 0 and "clean for TensorRT 8.5" in out


def test_build_without_tensorrt_is_one_line_and_writes_nothing(cli, device_files, tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here: build would run")
    except ImportError:
        pass
    engine = tmp_path / "m.engine"
    code, _, err = cli("build", device_files / "pruned.onnx", "-o", engine)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "TensorRT is not installed" in lines[0], err
    assert not engine.exists() and not Path(str(engine) + ".json").exists()


@pytest.mark.slow
def test_run_onnx_on_ort_with_and_without_the_token_map(cli, device_files, tmp_path):
    """Same logits either way (the selection outputs are added with onnx alone and cost no computation); the token
    map tints the frames."""
    tops, firsts = {}, {}
    for name, extra in (("plain", []), ("tokens", ["--show-tokens"])):
        folder = tmp_path / name
        folder.mkdir()
        code, out, err = cli("run", device_files / "clip.mp4", f"{folder}/", "--model", device_files / "pruned.onnx",
                             "--backend", "ort", "--headless", "--log", tmp_path / f"{name}.jsonl", *extra)
        assert code == 0, err
        assert "12 frames read, 12 processed, 0 dropped" in out and "tiny_bat on ort" in out
        log = log_lines(tmp_path / f"{name}.jsonl")
        assert [r["frame"] for r in log] == list(range(12))
        tops[name] = [[t["class"] for t in r["top"]] for r in log]
        import cv2

        firsts[name] = cv2.imread(str(sorted(folder.iterdir())[0])).astype(int)
    assert tops["plain"] == tops["tokens"]
    assert np.abs(firsts["tokens"] - firsts["plain"]).max() > 40


def test_run_engine_without_tensorrt_is_one_line(cli, device_files, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    code, _, err = cli("run", device_files / "clip.mp4", "--model", engine, "--headless")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "TensorRT is not installed" in lines[0], err


@pytest.mark.slow
def test_bench_pruned_file_against_unpruned_file(cli, device_files, tmp_path):
    out_json = tmp_path / "bench.json"
    code, out, err = cli("bench", "--model", device_files / "pruned.onnx", "--baseline",
                         device_files / "unpruned.onnx", "--runs", "3", "--repeats", "2", "--threads", "1",
                         "--json", out_json, timeout=300)
    assert code == 0, err
    result = json.loads(out_json.read_text())
    assert result["models"]["pruned"]["stage_tokens"] == PRUNED_TOKENS
    assert result["models"]["baseline"]["method"] == "none" and result["models"]["baseline"]["stage_tokens"] == [65]
    assert result["settings"]["batch"] == 1 and result["settings"]["backend"] == "ort"
    per_round = result["settings"]["per_round"]
    assert per_round == 10 and result["per_model"]["pruned"]["n"] == 3 * per_round * 2  # rounds x per round x repeats
    assert len(result["ratios_per_repeat"]["pruned/baseline"]) == 2
    assert "65 -> 46 -> 33 -> 24" in out and "pruned / baseline" in out


def test_bench_of_a_file_without_a_baseline_is_one_line(cli, device_files):
    code, _, err = cli("bench", "--model", device_files / "pruned.onnx")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "--baseline" in lines[0], err


def test_doctor(cli):
    code, out, err = cli("doctor", "--json")
    assert code in (0, 1), err
    report = json.loads(out)
    assert report  # what doctor reports is tests/doctor's business; here: it runs without torch


@pytest.mark.parametrize("args", [
    ["export", "-o", "x.onnx"], ["flops"], ["run", "{clip}", "--headless"],
    ["run", "{clip}", "--model", "deit_tiny_patch16_224", "--headless"],
    ["tune", "--target-fps", "5", "-o", "t.onnx"], ["bench", "--model", "deit_tiny_patch16_224", "--runs", "1"],
])
def test_workstation_commands_name_the_extra_in_one_line(cli, device_files, args):
    args = [a.format(clip=device_files / "clip.mp4") for a in args]
    code, _, err = cli(*args)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert "tdm-edge[export]" in lines[0] or "needs Python >= 3.10" in lines[0], lines[0]
