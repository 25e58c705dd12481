"""``tdm-edge run`` end to end on generated videos and image folders, with a tiny exported BAT ViT."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tdm_edge.cli import main
from tdm_edge.video.overlay import BACKGROUND, label_boxes

from ..conftest import tiny_vit
from .conftest import LABELS, frames, read_video, write_video

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *args):
    code = main(["run", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def log_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_video_in_video_out_every_frame_accounted(tmp_path, tiny_onnx, capsys):
    write_video(tmp_path / "in.mp4", frames(12, (96, 64)))
    code, out, err = run(capsys, tmp_path / "in.mp4", tmp_path / "out.avi", "--model", tiny_onnx, "--headless",
                         "--log", tmp_path / "log.jsonl")
    assert code == 0, err
    assert "end of input: 12 frames read, 12 processed, 0 dropped" in out
    got = read_video(tmp_path / "out.avi")
    assert len(got) == 12 and got[0].shape == (64, 96, 3)
    log = log_lines(tmp_path / "log.jsonl")
    assert [r["frame"] for r in log] == list(range(12)) and not any(r["dropped"] for r in log)
    assert all(len(r["top"]) == 5 and r["top"][0]["label"] in LABELS for r in log)
    assert "random weights" in err  # provenance: the tiny model has no checkpoint


def test_labels_drawn_where_they_should_be(tmp_path, tiny_onnx, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"{i}.png"), np.zeros((240, 320, 3), np.uint8))
    code, _, err = run(capsys, src, tmp_path / "f_%i.png", "--model", tiny_onnx, "--headless", "--topk", "3",
                       "--log", tmp_path / "log.jsonl")
    assert code == 0, err
    record = log_lines(tmp_path / "log.jsonl")[0]
    texts = [f"{100 * t['prob']:.2f}% {t['label']}" for t in record["top"]]
    image = cv2.imread(str(tmp_path / "f_0.png"))
    boxes = label_boxes(texts, 240)
    for x0, y0, x1, y1 in boxes:
        assert image[y0 + 1, x0 + 1].tolist() == list(BACKGROUND)  # the grey box, top left as in imagenet.py
        assert image[y0:y1, x0:x1].max() > 200  # white text inside
        assert image[(y0 + y1) // 2, x1 + 2].tolist() == [0, 0, 0]  # nothing right of the box
    assert boxes[1][1] > boxes[0][3] and image[boxes[0][3] + 1, 10].tolist() == [0, 0, 0]  # one line each
    assert image[120:, 150:].max() == 0  # the rest of the (black) frame is untouched


def test_odd_frames_and_size_changes(tmp_path, tiny_onnx, capsys):
    base = frames(4, (80, 60))
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "1.png"), base[0])
    cv2.imwrite(str(src / "2.png"), cv2.cvtColor(base[1], cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(src / "3.png"), cv2.cvtColor(base[2], cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(src / "4.png"), base[3].astype(np.uint16) * 257)  # 16 bit
    cv2.imwrite(str(src / "5.png"), frames(1, (50, 90))[0])  # another size
    code, out, err = run(capsys, src, tmp_path / "out.mp4", "--model", tiny_onnx, "--headless", "--log",
                         tmp_path / "log.jsonl")
    assert code == 0, err
    got = read_video(tmp_path / "out.mp4")
    assert len(got) == 5 and {g.shape for g in got} == {(60, 80, 3)}
    assert [r["size"] for r in log_lines(tmp_path / "log.jsonl")] == [[80, 60]] * 4 + [[50, 90]]
    assert "1 resized to the first frame's size" in out


def test_live_source_drops_are_accounted(tmp_path, tiny_onnx, capsys):
    code, out, err = run(capsys, "synthetic://?frames=40", "--model", tiny_onnx, "--headless", "--input-rate", "400",
                         "--input-width", "160", "--input-height", "120", "--log", tmp_path / "log.jsonl")
    assert code == 0, err
    log = log_lines(tmp_path / "log.jsonl")
    assert [r["frame"] for r in log] == list(range(40))  # every frame the camera delivered, in order
    dropped = sum(r["dropped"] for r in log)
    assert f"40 frames read, {40 - dropped} processed, {dropped} dropped" in out


def test_show_tokens_tints_the_seen_region_only(tmp_path, tiny_onnx, capsys):
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.full((240, 320, 3), 128, np.uint8))
    for name, extra in (("plain.png", []), ("tokens.png", ["--show-tokens"])):
        code, _, err = run(capsys, src, tmp_path / name, "--model", tiny_onnx, "--headless", "--topk", "1", *extra)
        assert code == 0, err
    plain, tokens = (cv2.imread(str(tmp_path / n)).astype(int) for n in ("plain.png", "tokens.png"))
    # the 32 px model sees the centre crop (crop_pct 0.9): x in [53, 267) of 320; the panels sit bottom right
    assert np.abs(tokens[60:170, 60:260] - plain[60:170, 60:260]).max() > 40  # tinted patches
    # left of the seen region, below the label (one, ~25 px) and the legend (~25 px at 240 p): untouched
    assert np.array_equal(tokens[80:170, :45], plain[80:170, :45])


def test_without_a_model_the_shipped_demo_model_runs(tmp_path, capsys):
    from tdm_edge.train.trained import demo_model_path, read_record

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), frames(1, (320, 240))[0])
    code, out, err = run(capsys, src, tmp_path / "o.png", "--headless", "--log", tmp_path / "log.jsonl")
    assert code == 0, err
    assert "shipped demo model" in err and "random weights" not in err
    record = read_record(demo_model_path())
    assert f"{record['model']} on torch" in out
    top = log_lines(tmp_path / "log.jsonl")[0]["top"]
    assert len(top) == 5 and {t["label"] for t in top} <= set(record["labels"])  # 5 of its 6 classes


def test_torch_cuda_backend_is_the_fp16_cuda_graph_runner(monkeypatch):
    # no GPU here: only the choice of runner is checked (the runner itself is tested on a GPU, tests/runners)
    from tdm_edge.cli import build_parser
    from tdm_edge.runners.torch_cuda import TorchCudaRunner
    from tdm_edge.video.backends import load_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for show_tokens, fused in ((False, "auto"), (True, False)):
        args = build_parser().parse_args(["run", "synthetic://", "--backend", "torch-cuda"]
                                         + ["--show-tokens"] * show_tokens)
        loaded = load_model(args)
        assert isinstance(loaded.runner, TorchCudaRunner) and loaded.backend == "torch-cuda"
        assert loaded.runner.fp16 and loaded.runner.cuda_graph and loaded.runner.fused_merge == fused
        assert loaded.runner.output_names == ("logits", *loaded.selections)


def test_torch_backend_from_a_timm_name(tmp_path, capsys):
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), frames(1, (120, 100))[0])
    code, out, err = run(capsys, src, tmp_path / "o.png", "--model", "deit_tiny_patch16_224", "--backend", "torch",
                         "--headless", "--show-tokens", "--log", tmp_path / "log.jsonl")
    assert code == 0, err
    assert "on torch" in out and "random weights" in err
    record = log_lines(tmp_path / "log.jsonl")[0]
    assert record["top"][0]["label"] and len(record["top"]) == 5  # ImageNet labels from timm, via the metadata


@pytest.mark.parametrize("case, words", [
    (["webrtc://@:8554/x"], "unknown input scheme webrtc://"),
    (["missing.mp4"], "input not found"),
    (["IN", "--backend", "tensorrt"], "unknown backend 'tensorrt'"),
    (["IN", "--backend", "trt"], "TensorRT is not installed"),  # an .onnx on trt: built on first run (H4)
    (["IN", "--backend", "torch"], "--backend torch cannot run"),
    (["IN", "--model", "ENGINE"], "TensorRT is not installed"),
    (["IN", "--model", None, "--backend", "ort"], "--backend ort cannot run a checkpoint"),
    (["IN", "--model", None, "--checkpoint", "PLAIN"], "does not say which model it holds"),
    (["CORRUPT"], "not a video OpenCV can read"),
    (["IN", "OUT.mp4", "--output-codec", "h264"], "H.264 is not available"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, tiny_onnx, capsys, case, words):
    write_video(tmp_path / "in.avi", frames(2), "MJPG")
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (tmp_path / "m.engine").write_bytes(b"not an engine")
    torch.save(tiny_vit().state_dict(), tmp_path / "plain.pth")  # weights without tdm-edge train's record
    subs = {"IN": tmp_path / "in.avi", "CORRUPT": tmp_path / "bad.mp4", "ENGINE": tmp_path / "m.engine",
            "PLAIN": tmp_path / "plain.pth",
            "OUT.mp4": tmp_path / "out.mp4", "missing.mp4": tmp_path / "missing.mp4"}
    args = [subs.get(a, a) for a in case]
    if "--model" not in case:
        args += ["--model", tiny_onnx]
    args = [a for a in args if a is not None] if None not in args else [a for a in args if a not in ("--model", None)]
    if words.startswith("H.264") and cv2.VideoWriter(str(tmp_path / "p.mp4"), cv2.VideoWriter_fourcc(*"avc1"), 1,
                                                       (64, 64)).isOpened():
        pytest.skip("this OpenCV writes H.264")
    code, _, err = run(capsys, *args, "--headless")
    lines = [line for line in err.splitlines() if "warning" not in line]
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err


def test_full_log_disk_finalises_the_video(tmp_path, tiny_onnx, capsys):
    write_video(tmp_path / "in.avi", frames(5), "MJPG")
    code, out, err = run(capsys, tmp_path / "in.avi", tmp_path / "out.avi", "--model", tiny_onnx, "--headless",
                         "--log", "/dev/full")
    assert code == 1 and "error: disk full writing the --log file" in err
    assert len(read_video(tmp_path / "out.avi")) == 1  # the frame written before the log line failed


def test_truncated_file_ends_cleanly_with_a_note(tmp_path, tiny_onnx, capsys):
    path = tmp_path / "in.avi"
    write_video(path, frames(10), "MJPG")
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    code, out, err = run(capsys, path, "--model", tiny_onnx, "--headless")
    assert code == 0 and "of the 10 frames its header announces (truncated or damaged file)" in out


def test_sigint_mid_run_leaves_a_readable_file(tmp_path, tiny_onnx):
    log, video = tmp_path / "log.jsonl", tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "tdm_edge.cli", "run", "synthetic://", str(video), "--model",
                             str(tiny_onnx), "--headless", "--input-width", "160", "--input-height", "120",
                             "--input-rate", "30", "--log", str(log)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or log.read_text().count('"dropped": false') < 4):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by SIGINT" in out
    processed = [r for r in log_lines(log) if not r["dropped"]]
    got = read_video(video)
    assert len(got) == len(processed) >= 4 and got[0].shape == (120, 160, 3)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary file left behind


@pytest.mark.parametrize("content", [b"", b"not a png at all"])
def test_zero_frames_processed_is_an_error(tmp_path, tiny_onnx, capsys, content):
    """A folder whose only image cannot be read: exit 2 with the reason, not success after 0 frames."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.png").write_bytes(content)
    code, out, err = run(capsys, src, tmp_path / "o", "--model", tiny_onnx, "--headless")
    assert code == 2
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert errors == ["tdm-edge run: error: no frame processed: all 1 image(s) were unreadable"]
    assert "0 processed" in out


@pytest.mark.parametrize("extra", [["--keep-rate", "0.5"], ["--method", "evit"], ["--img-size", "64"],
                                   ["--knn", "3"], ["--num-classes", "3"]])
def test_model_options_do_not_apply_to_an_exported_model(tmp_path, tiny_onnx, capsys, extra):
    """--keep-rate & co. with an .onnx were silently ignored; now one line, exit 2, before any frame."""
    code, out, err = run(capsys, "synthetic://?frames=2", tmp_path / "o.mp4", "--model", tiny_onnx, "--headless",
                         *extra)
    assert code == 2 and not (tmp_path / "o.mp4").exists()
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert errors == [f"tdm-edge run: error: {extra[0]} does not apply to {Path(tiny_onnx).name}: an exported model "
                      "keeps the settings it was exported with (export again to change them)"], err
