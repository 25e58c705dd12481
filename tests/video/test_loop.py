import os
import signal
import subprocess

import numpy as np
import pytest

from tdm_edge.cli import main
from tdm_edge.runners.base import Runner, TensorMeta
from tdm_edge.video.capture import FrameGrabber
from tdm_edge.video.loop import FrameLog, StopSignals, run_loop, top_k
from tdm_edge.video.overlay import Overlay
from tdm_edge.video.sources import CaptureSource, SourceOptions

from .conftest import frames, read_video, write_video
from .test_sources import FlakyCapture

PREP = {"input_size": [3, 32, 32], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
        "mean": [0.5] * 3, "std": [0.25] * 3}


class CountingRunner(Runner):
    """Logits that favour class (call number % 3): a stand-in model whose outputs the test can predict."""

    def __init__(self):
        super().__init__("counting")
        self.calls = 0

    def activate_impl(self): ...

    def deactivate_impl(self): ...

    def input_metadata_impl(self):
        return [TensorMeta("input", np.dtype(np.float32), (1, 3, 32, 32))]

    def infer_impl(self, feed):
        logits = np.zeros((1, 4), np.float32)
        logits[0, self.calls % 3] = 3.0
        self.calls += 1
        return {"logits": logits}


def test_top_k_is_softmax_ordered():
    top = top_k(np.array([1.0, 3.0, 2.0, 3.0]), 3)
    assert [c for c, _ in top] == [1, 3, 2]  # ties: lower class first
    e = np.exp([1.0, 3.0, 2.0, 3.0])
    assert top[0][1] == pytest.approx(e[1] / e.sum())


def test_lost_source_finalises_and_exits_1(tmp_path):
    script = [True] * 4  # four frames, then the camera is gone for good
    source = CaptureSource("cam0", lambda: FlakyCapture(script), SourceOptions(retries=3, backoff=0.01), live=True)
    from tdm_edge.video.outputs import ImageOutput

    out = ImageOutput(str(tmp_path / "f_%i.png"), folder_mode=False)
    runner = CountingRunner()
    runner.activate()
    summary = run_loop(FrameGrabber(source, keep_latest=False).start(), runner, {"preprocessing": PREP},
                       Overlay(["a", "b", "c", "d"], PREP, (8, 8)), [out], topk=2)
    assert summary.exit_code == 1 and "cam0 lost: no frame after 3 reconnection attempts" in summary.reason
    assert summary.processed == 4 == runner.calls and sorted(os.listdir(tmp_path)) == [f"f_{i}.png" for i in range(4)]


def test_sigterm_stops_between_frames():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "stopped by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored


def test_log_records_every_frame_with_its_prediction(tmp_path):
    path = tmp_path / "in.avi"
    write_video(path, frames(6), "MJPG")
    from tdm_edge.video.sources import open_source, parse_source

    runner = CountingRunner()
    runner.activate()
    with open(tmp_path / "log.jsonl", "w") as f:
        run_loop(FrameGrabber(open_source(parse_source(str(path)), SourceOptions()), keep_latest=False).start(),
                 runner, {"preprocessing": PREP}, Overlay(None, PREP, (8, 8)), [], topk=1, log=FrameLog(f))
    import json

    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["top"][0]["class"] for r in records] == [0, 1, 2, 0, 1, 2]
    assert [r["top"][0]["label"] for r in records][:2] == ["class 0", "class 1"]  # no labels in the metadata


def _mount_tmpfs(path, size):
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_real_full_disk_leaves_a_readable_video(tmp_path, tiny_onnx, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not _mount_tmpfs(disk, "3m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        (disk / "filler").write_bytes(np.random.default_rng(0).bytes(int(1.7e6)))  # ~1.3 MB left
        noise = [np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8) for i in range(60)]
        write_video(tmp_path / "in.avi", noise, "MJPG")  # frames that do not compress: the disk fills fast
        code = main(["run", str(tmp_path / "in.avi"), str(disk / "out.mp4"), "--model", str(tiny_onnx),
                     "--headless"])
        out, err = capsys.readouterr()
        assert code == 1 and "disk nearly full" in err and len(err.strip().splitlines()) == 2  # + the weights warning
        written = int(out.split("stopped writing after ")[1].split(" frames")[0])
        got = read_video(disk / "out.mp4")
        assert len(got) == written > 0 and got[0].shape == (240, 320, 3)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
