"""Opening cameras and streams: a deadline on every open, Ctrl-C during it, retries from the first open, one line
and exit 2 when it fails. In process with stand-in captures; as ``tdm-edge run csi://0`` subprocesses with this
machine's OpenCV (no GStreamer), a stand-in GStreamer OpenCV (tests/video/standin_cv2) and, when installed,
Debian's python3-opencv (GStreamer 1.22, no Argus element: its open of an Argus pipeline never returns)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tdm_edge.cli import main
from tdm_edge.errors import UsageError
from tdm_edge.video.deadline import OpenTimeout, open_within
from tdm_edge.video.cvutil import build_has
from tdm_edge.video.pipelines import gst_has
from tdm_edge.video.sources import CaptureSource, SourceOptions, open_source, parse_source

ROOT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent / "standin_cv2"
SYSTEM_PYTHON = "/usr/bin/python3"


class StandInCapture:
    """Stands in for cv2.VideoCapture: opened or not, counts releases."""

    released = 0

    def __init__(self, opened):
        self.opened = opened

    def isOpened(self):
        return self.opened

    def read(self):
        return (True, "frame") if self.opened else (False, None)

    def get(self, prop):
        return 0.0

    def release(self):
        StandInCapture.released += 1


class FakeClock:
    """time.monotonic that advances only when the source sleeps."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def opener_from(results):
    calls = []

    def opener():
        calls.append(1)
        return StandInCapture(results.pop(0) if results else False)

    return opener, calls


def test_open_within_returns_raises_and_times_out():
    assert open_within(lambda: 42, 5.0) == 42
    with pytest.raises(ZeroDivisionError):
        open_within(lambda: 1 / 0, 5.0)
    gate, released = threading.Event(), StandInCapture.released
    with pytest.raises(OpenTimeout, match="no answer within 0.2 s"):
        open_within(lambda: gate.wait() and StandInCapture(True), 0.2)
    gate.set()  # the abandoned open returns now: its capture is released by the worker
    for _ in range(200):
        if StandInCapture.released > released:
            break
        time.sleep(0.01)
    assert StandInCapture.released == released + 1


def test_first_open_of_a_live_source_is_retried_with_backoff():
    clock = FakeClock()
    opener, calls = opener_from([False, False, True])  # the camera comes up on the third open
    source = CaptureSource("rtsp://cam/live", opener, SourceOptions(retries=5, backoff=0.5), live=True,
                           sleep=clock.sleep, clock=clock)
    assert len(calls) == 3 and clock.sleeps == [0.5, 1.0] and source.read() == "frame"


def test_retries_stop_at_the_deadline_with_one_line():
    clock = FakeClock()
    opener, calls = opener_from([])
    with pytest.raises(UsageError) as err:
        CaptureSource("cam", opener, SourceOptions(retries=9, backoff=0.5, timeout=10.0), live=True,
                      sleep=clock.sleep, clock=clock, hint="; is it plugged in?")
    # attempts at 0, 0.5, 1.5, 3.5, 7.5 s; the next (after 8 s) would pass the 10 s deadline
    assert str(err.value) == "cannot open cam (5 attempts in 7.5 s); is it plugged in?"
    assert len(calls) == 5 and clock.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_retries_stop_after_input_retries():
    clock = FakeClock()
    opener, calls = opener_from([])
    with pytest.raises(UsageError, match=r"^cannot open cam \(3 attempts in 1.5 s\)$"):
        CaptureSource("cam", opener, SourceOptions(retries=2, timeout=60.0), live=True, sleep=clock.sleep,
                      clock=clock)
    assert len(calls) == 3


def test_files_are_opened_once():
    clock = FakeClock()
    opener, calls = opener_from([False, True])
    with pytest.raises(UsageError, match="^cannot decode clip.mp4: not a video OpenCV can read$"):
        CaptureSource("clip.mp4", opener, SourceOptions(), live=False, sleep=clock.sleep, clock=clock)
    assert len(calls) == 1 and clock.sleeps == []


def test_an_open_that_never_returns_is_one_line_at_the_deadline():
    gate = threading.Event()
    with pytest.raises(UsageError, match=r"^csi://0 did not open within 0.3 s \(--input-timeout\); hint$"):
        CaptureSource("csi://0", lambda: gate.wait(), SourceOptions(timeout=0.3), live=True, hint="; hint")
    gate.set()


def test_a_reconnect_that_hangs_counts_as_a_failed_attempt():
    gate, results = threading.Event(), [True]

    def opener():
        if results:
            return StandInCapture(results.pop())
        gate.wait()  # every re-open hangs
        return StandInCapture(True)

    source = CaptureSource("cam", opener, SourceOptions(retries=2, backoff=0.0, timeout=0.2), live=True)
    source.cap.opened = False  # the camera goes away
    with pytest.raises(Exception, match="cam lost: no frame after 2 reconnection attempts"):
        source.read()
    gate.set()


@pytest.mark.skipif(build_has("GStreamer"), reason="this OpenCV has GStreamer")
def test_run_csi_on_this_machines_opencv_is_one_line_exit_2(capsys):
    assert main(["run", "csi://0", "--headless"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "csi://0 needs OpenCV with GStreamer" in err


def run_cli(tmp_path, *args, python=sys.executable, standin=True, popen=False, **env_extra):
    path = [str(STANDIN)] if standin else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("GST_PLUGIN")}
    env.update(PYTHONPATH=os.pathsep.join(path + [str(ROOT)]), STANDIN_CV2_LOG=str(tmp_path / "opens.log"),
               **env_extra)
    command = [python, "-m", "tdm_edge.cli", "run", "csi://0", "--headless", *args]
    if popen:
        return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def plugin_folder(tmp_path, *libraries):
    folder = tmp_path / "gst-plugins"
    folder.mkdir()
    for name in libraries:
        (folder / f"libgst{name}.so").write_bytes(b"")  # stand-in plugin files: only their names are looked at
    return str(folder)


def opens(tmp_path):
    log = tmp_path / "opens.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_gstreamer_opencv_whose_argus_open_hangs_gives_one_line_at_the_deadline(tmp_path):
    result = run_cli(tmp_path, "--input-timeout", "2", STANDIN_CV2_OPEN="block",
                     GST_PLUGIN_PATH=plugin_folder(tmp_path, "coreelements", "nvarguscamerasrc"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tdm-edge run: error: csi://0 did not open within 2 s (--input-timeout); is a "
                                    "camera connected, and nvargus-daemon running?")
    assert result.stderr.count("\n") == 1 and len(opens(tmp_path)) == 1
    assert opens(tmp_path)[0].startswith("1800 nvarguscamerasrc sensor-id=0 ! ")  # CAP_GSTREAMER, the pipeline


@pytest.mark.slow
def test_gstreamer_opencv_without_argus_is_refused_before_opening(tmp_path):
    result = run_cli(tmp_path, STANDIN_CV2_OPEN="block",
                     GST_PLUGIN_SYSTEM_PATH=plugin_folder(tmp_path, "coreelements"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and opens(tmp_path) == []
    assert "csi://0: this system's GStreamer has no nvarguscamerasrc" in result.stderr


@pytest.mark.slow
def test_a_camera_that_never_opens_is_retried_within_the_deadline(tmp_path):
    result = run_cli(tmp_path, "--input-timeout", "2", STANDIN_CV2_OPEN="fail",
                     GST_PLUGIN_SYSTEM_PATH=str(tmp_path))  # no GStreamer folder found: the open decides
    assert result.returncode == 2, result.stderr
    # opens at 0, 0.5 and 1.5 s; the next (after 2 s more) would pass the 2 s deadline
    assert result.stderr.startswith("tdm-edge run: error: cannot open csi://0 (3 attempts in 1.5 s); is a camera")
    assert result.stderr.count("\n") == 1 and len(opens(tmp_path)) == 3


@pytest.mark.slow
def test_ctrl_c_during_a_hanging_open_ends_the_run_at_once(tmp_path):
    proc = run_cli(tmp_path, "--input-timeout", "600", popen=True, STANDIN_CV2_OPEN="block",
                   GST_PLUGIN_PATH=plugin_folder(tmp_path, "nvarguscamerasrc"))
    try:
        for _ in range(600):  # until the open has started (the stand-in logs it)
            if opens(tmp_path) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert opens(tmp_path), proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)  # far below the 600 s deadline: SIGINT ended it, not the deadline
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.splitlines() == ["tdm-edge run: interrupted"]


def system_opencv_with_gstreamer() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import cv2, tdm_edge.cli; print(cv2.getBuildInformation())"],
                           capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    return check.returncode == 0 and any(line.split(":")[0].strip() == "GStreamer" and "YES" in line
                                         for line in check.stdout.splitlines())


needs_debian_opencv = pytest.mark.skipif(not system_opencv_with_gstreamer(),
                                         reason="needs Debian's python3-opencv (GStreamer) at /usr/bin/python3")


@pytest.mark.slow
@needs_debian_opencv
def test_debian_gstreamer_opencv_without_argus_is_one_line_exit_2(tmp_path):
    result = run_cli(tmp_path, python=SYSTEM_PYTHON, standin=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "has no nvarguscamerasrc" in result.stderr


@pytest.mark.slow
@needs_debian_opencv
def test_debian_gstreamer_opencv_hanging_open_deadline_and_ctrl_c(tmp_path):
    # an Argus plugin file makes the lookup pass: the real OpenCV 4.6 open of the pipeline then never returns
    plugins = plugin_folder(tmp_path, "nvarguscamerasrc")
    result = run_cli(tmp_path, "--input-timeout", "3", python=SYSTEM_PYTHON, standin=False, GST_PLUGIN_PATH=plugins)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith("tdm-edge run: error: csi://0 did not open within 3 s")
    proc = run_cli(tmp_path, "--input-timeout", "600", python=SYSTEM_PYTHON, standin=False, popen=True,
                   GST_PLUGIN_PATH=plugins)
    try:
        time.sleep(3)  # let it reach the open (if it is not there yet, SIGINT must end it all the same)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.splitlines()[-1] == "tdm-edge run: interrupted"


def test_open_source_rejects_bad_options():
    spec = parse_source("synthetic://?frames=1")
    with pytest.raises(UsageError, match="--input-timeout must be > 0"):
        open_source(spec, SourceOptions(timeout=0))
    with pytest.raises(UsageError, match="unknown --input-flip 'sideways'"):
        open_source(spec, SourceOptions(flip="sideways"))
    assert open_source(spec, SourceOptions(flip="horizontal", codec="H264")).options.flip == "horizontal-flip"


GSTREAMER_FILE_READ = """
import sys
import numpy as np
import tdm_edge.video.openers as openers
real = openers.build_has
openers.build_has = lambda feature: False if feature.upper() == "FFMPEG" else real(feature)  # OpenCV sans FFmpeg
from tdm_edge.video.sources import SourceOptions, open_source, parse_source
path, codec, out = sys.argv[1], sys.argv[2] or None, sys.argv[3]
source = open_source(parse_source(path), SourceOptions(codec=codec))
frames = []
while True:
    image = source.read()
    if image is None:
        break
    frames.append(image)
np.save(out, np.stack(frames))
print(source.notes[0])
"""


@pytest.mark.slow
@needs_debian_opencv
@pytest.mark.skipif(not (gst_has("avi") and gst_has("jpeg")), reason="needs gstreamer1.0-plugins-good (avi, jpeg)")
@pytest.mark.parametrize("codec, pipeline", [
    ("", "GStreamer: filesrc location={} ! decodebin ! videoconvert ! "),
    ("mjpeg", "GStreamer: filesrc location={} ! avidemux ! queue ! jpegdec name=decoder ! video/x-raw ! ")])
def test_files_through_gstreamer_when_opencv_has_no_ffmpeg(tmp_path, codec, pipeline):
    import numpy as np

    from .conftest import frames, read_video, write_video

    path = tmp_path / "clip.avi"
    write_video(path, frames(6), "MJPG")
    result = subprocess.run([SYSTEM_PYTHON, "-c", GSTREAMER_FILE_READ, str(path), codec, str(tmp_path / "f.npy")],
                            capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(pipeline.format(path))
    got, want = np.load(tmp_path / "f.npy"), np.stack(read_video(path))  # GStreamer's decode, FFmpeg's decode
    assert got.shape == want.shape == (6, 64, 96, 3)
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 2.0  # the same JPEGs, two decoders


@pytest.mark.skipif(not build_has("FFMPEG") or build_has("GStreamer"), reason="needs this machine's FFmpeg OpenCV")
@pytest.mark.parametrize("uri", ["rtsp://127.0.0.1:9/live", "http://127.0.0.1:9/video.mjpg"])
def test_a_stream_that_refuses_is_retried_then_one_line(uri, monkeypatch):
    # real OpenCV and FFmpeg against a closed local port: refused at once, tried again until the deadline
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    with pytest.raises(UsageError) as err:
        open_source(parse_source(uri), SourceOptions(timeout=2.0, latency=50))
    assert str(err.value).startswith(f"cannot open {uri} (3 attempts in 1.5 s); is the stream up and reachable?")
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ  # set only while opening


def test_rtsp_through_ffmpeg_gets_the_latency_options_while_it_opens(monkeypatch):
    import types

    from tdm_edge.video import openers

    seen = []

    class StandInFFmpegCapture:  # stands in for cv2.VideoCapture: records the environment OpenCV would read
        def __init__(self, location, api, params=()):
            seen.append((location, api, list(params), os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")))

    stand_in = types.SimpleNamespace(VideoCapture=StandInFFmpegCapture, CAP_FFMPEG=1900,
                                     CAP_PROP_OPEN_TIMEOUT_MSEC=53, CAP_PROP_READ_TIMEOUT_MSEC=54)
    monkeypatch.setattr(openers, "cv2", lambda: stand_in)
    monkeypatch.setattr(openers, "build_has", lambda feature: feature == "FFMPEG")
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    plan = openers.plan_rtsp("rtsp://h/live", SourceOptions(latency=200, timeout=4.0, codec="h264"))
    plan.opener()
    assert seen == [("rtsp://h/live", 1900, [53, 4000, 54, 4000], "fflags;nobuffer|max_delay;200000")]
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
    assert plan.notes[1] == "--input-codec h264 not used: FFmpeg finds the codec itself"
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")  # the user's own wins
    plan.opener()
    assert seen[-1][3] == "rtsp_transport;tcp" and os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;tcp"


@pytest.mark.parametrize("codec, installed, expected", [
    ("h264", True, "rtspsrc location=rtsp://h/live latency=300 ! queue ! rtph264depay ! nvv4l2decoder name=decoder "
                   "enable-max-performance=1 ! video/x-raw(memory:NVMM) ! nvvidconv ! "),
    ("h264", False, "rtspsrc location=rtsp://h/live latency=300 ! queue ! rtph264depay ! h264parse ! avdec_h264 "),
    (None, True, "rtspsrc location=rtsp://h/live latency=300 ! queue ! decodebin ! nvvidconv ! ")])
def test_rtsp_on_a_gstreamer_opencv_uses_rtspsrc_and_the_hardware_decoder(monkeypatch, codec, installed, expected):
    import types

    from tdm_edge.video import openers

    opened = []
    stand_in = types.SimpleNamespace(VideoCapture=lambda *a: opened.append(a), CAP_GSTREAMER=1800)
    monkeypatch.setattr(openers, "cv2", lambda: stand_in)
    monkeypatch.setattr(openers, "build_has", lambda feature: True)  # GStreamer and FFmpeg: GStreamer first
    monkeypatch.setattr(openers, "gst_has", lambda element: installed)  # nvv4l2decoder, nvvidconv (a Jetson)
    plan = openers.plan_rtsp("rtsp://h/live", SourceOptions(latency=300, codec=codec))
    plan.opener()
    assert opened[0][0].startswith(expected) and opened[0][1] == 1800
    assert plan.notes == [f"GStreamer: {opened[0][0]}"]
