import cv2
import numpy as np
import pytest

from tdm_edge.errors import UsageError
from tdm_edge.video.cvutil import build_has
from tdm_edge.video.sources import CaptureSource, SourceLost, SourceOptions, apply_flip, open_source, parse_source

from .conftest import frames, write_video


def test_parse_source_kinds(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "clip.mkv").write_bytes(b"x")
    cases = {"csi://1": ("csi", "1"), "/dev/video0": ("v4l2", "/dev/video0"), "v4l2://2": ("v4l2", "/dev/video2"),
             "v4l2:///dev/video3": ("v4l2", "/dev/video3"), "rtsp://cam.local:8554/live": ("rtsp", "rtsp://cam.local:8554/live"),
             f"file://{tmp_path}/a.png": ("image", f"{tmp_path}/a.png"), str(tmp_path / "clip.mkv"): ("video", str(tmp_path / "clip.mkv")),
             str(tmp_path): ("images", str(tmp_path)), "synthetic://?frames=7": ("synthetic", ""),
             "http://cam.local/video.mjpg": ("http", "http://cam.local/video.mjpg")}
    for uri, (kind, location) in cases.items():
        spec = parse_source(uri)
        assert (spec.kind, spec.location) == (kind, location), uri
    assert dict(parse_source("synthetic://?frames=7").query) == {"frames": "7"}
    assert parse_source("csi://0").live and not parse_source(str(tmp_path)).live


@pytest.mark.parametrize("uri, words", [("webrtc://@:1234/x", "unknown input scheme webrtc://"),
                                         ("csi://front", "csi://N"), ("/no/such/clip.mp4", "input not found")])
def test_parse_source_rejects(uri, words):
    with pytest.raises(UsageError, match=words):
        parse_source(uri)


@pytest.mark.skipif(build_has("GStreamer"), reason="this OpenCV has GStreamer")
def test_csi_without_gstreamer_says_what_to_do():
    with pytest.raises(UsageError, match="GStreamer.*JetPack"):
        open_source(parse_source("csi://0"), SourceOptions())


def test_flips_match_numpy():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(apply_flip(img, "horizontal-flip"), img[:, ::-1])
    assert np.array_equal(apply_flip(img, "horizontal"), img[:, ::-1])  # jetson-utils' other spelling
    assert np.array_equal(apply_flip(img, "vertical-flip"), img[::-1])
    assert np.array_equal(apply_flip(img, "rotate-180"), img[::-1, ::-1])
    assert np.array_equal(apply_flip(img, "upper-right-diagonal"), np.rot90(img, 2).transpose(1, 0, 2))
    assert np.array_equal(apply_flip(img, "clockwise"), np.rot90(img, -1))
    assert np.array_equal(apply_flip(img, "counterclockwise"), np.rot90(img, 1))
    assert np.array_equal(apply_flip(img, "upper-left-diagonal"), img.transpose(1, 0, 2))


class FlakyCapture:
    """A test double for cv2.VideoCapture: the shared script says, per read, whether a frame comes."""

    def __init__(self, script: list[bool], opened: bool = True):
        self.script, self.opened = script, opened

    def isOpened(self):
        return self.opened

    def read(self):
        ok = self.script.pop(0) if self.script else False
        return ok, (np.full((4, 4, 3), len(self.script), np.uint8) if ok else None)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_flaky_source_reconnects_with_backoff():
    # 2 frames, then a read fails and so do the first two re-opened captures; the third is back for 3 frames
    script = [True, True, False, False, False, True, True, True]
    sleeps = []
    source = CaptureSource("flaky", lambda: FlakyCapture(script), SourceOptions(retries=5, backoff=0.5),
                           live=True, sleep=sleeps.append)
    got = [source.read() for _ in range(5)]
    assert all(g is not None for g in got)
    assert sleeps == [0.5, 1.0, 2.0]  # three attempts, the third succeeded
    assert source.reconnects == 1 and source.read_count == 5


def test_lost_source_gives_up_after_the_retries():
    sleeps, script = [], [True]
    source = CaptureSource("cam", lambda: FlakyCapture(script), SourceOptions(retries=4, backoff=1.0), live=True,
                           sleep=sleeps.append)
    assert source.read() is not None
    with pytest.raises(SourceLost, match="cam lost: no frame after 4 reconnection attempts over 15.0 s"):
        source.read()
    assert sleeps == [1.0, 2.0, 4.0, 8.0]


def test_image_folder_natural_order_unreadable_skipped_and_loop(tmp_path):
    imgs = frames(3)
    for name, img in zip(["img10.png", "img2.png", "img1.png"], imgs):
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / "img3.jpg").write_bytes(b"not a jpeg")
    source = open_source(parse_source(str(tmp_path)), SourceOptions(loop=1))
    got = []
    while (img := source.read()) is not None:
        got.append(img)
    # order img1, img2, (img3 unreadable), img10, twice
    assert [np.array_equal(g, e) for g, e in zip(got, [imgs[2], imgs[1], imgs[0]] * 2)] == [True] * 6
    assert len(got) == 6 and source.unreadable == 2 and "img3.jpg" in source.notes[0]


def test_truncated_avi_reads_what_is_there_and_says_so(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, frames(10), "MJPG")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])
    source = open_source(parse_source(str(path)), SourceOptions())
    count = 0
    while source.read() is not None:
        count += 1
    assert 0 < count < 10 and source.expected == 10
    assert f"ended after {count} of the 10 frames" in source.notes[0]


def test_corrupt_video_is_one_line(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, frames(10))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the mp4 index (moov) is at the end: gone
    with pytest.raises(UsageError, match="cannot decode .*clip.mp4: not a video OpenCV can read"):
        open_source(parse_source(str(path)), SourceOptions())


def test_video_file_resize_and_loop(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, frames(4), "MJPG")
    source = open_source(parse_source(str(path)), SourceOptions(width=48, loop=2))
    shapes = []
    while (img := source.read()) is not None:
        shapes.append(img.shape)
    assert shapes == [(32, 48, 3)] * 12 and source.fps == pytest.approx(10.0)


def test_synthetic_source_ends_and_moves():
    source = open_source(parse_source("synthetic://?frames=3"), SourceOptions(width=64, height=48, rate=1000))
    got = [source.read() for _ in range(4)]
    assert got[3] is None and got[0].shape == (48, 64, 3)
    assert not np.array_equal(got[0], got[2])
