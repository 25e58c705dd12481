import os
import stat

import numpy as np
import pytest

from tdm_edge.errors import UsageError
from tdm_edge.video import outputs
from tdm_edge.video.outputs import OutputFull, VideoFileOutput, open_output, parse_output

from .conftest import frames, read_video


def test_parse_output(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert parse_output(None, headless=False) == []  # no display: headless
    assert parse_output(str(tmp_path / "a.avi"), False)[0].codec == "mjpg"
    assert parse_output(f"file://{tmp_path}/a.mp4", False)[0].codec == "mp4v"
    assert parse_output(str(tmp_path / "frames") + "/", False)[0].kind == "images"
    assert parse_output(str(tmp_path / "f_%i.png"), False)[0].kind == "image"
    with pytest.raises(UsageError, match="needs a display"):
        parse_output("display://0", False)
    with pytest.raises(UsageError, match="unknown output scheme rtp://"):
        parse_output("rtp://10.0.0.1:1234", True)
    with pytest.raises(UsageError, match="does not exist"):
        parse_output(str(tmp_path / "no" / "a.mp4"), True)
    monkeypatch.setenv("DISPLAY", ":0")
    assert [s.kind for s in parse_output(str(tmp_path / "a.mp4"), False)] == ["video", "display"]
    assert [s.kind for s in parse_output(str(tmp_path / "a.mp4"), True)] == ["video"]


@pytest.mark.skipif(outputs.h264_available(outputs.Path("/tmp")), reason="this OpenCV can write H.264")
def test_h264_unavailable_is_said(tmp_path):
    with pytest.raises(UsageError, match="H.264 is not available in this OpenCV build"):
        parse_output(str(tmp_path / "a.mp4"), True, codec="h264")
    assert os.listdir(tmp_path) == []  # the probe file is gone


def test_video_written_atomically_with_umask_permissions_and_fixed_size(tmp_path):
    path = tmp_path / "out.avi"
    out = open_output(parse_output(str(path), True)[0], fps=12.0)
    images = frames(5, (64, 48)) + frames(2, (80, 40))  # the size changes mid-stream
    for img in images:
        out.write(img)
        assert not path.exists()  # only the temporary file exists until it is finalised
    out.close()
    got = read_video(path)
    assert len(got) == 7 and {g.shape for g in got} == {(48, 64, 3)} and out.resized == 2
    assert np.abs(got[0].astype(int) - images[0]).mean() < 8  # MJPG: close to what was written
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert sorted(os.listdir(tmp_path)) == ["out.avi"]


def test_full_disk_stops_early_and_leaves_a_readable_file(tmp_path, monkeypatch):
    free = iter([10 << 20] * 4 + [1 << 20] * 10)  # room for 4 frames, then below the reserve
    monkeypatch.setattr(outputs, "free_bytes", lambda folder: next(free))
    path = tmp_path / "out.mp4"
    out = VideoFileOutput(str(path), "mp4v", 10.0)
    with pytest.raises(OutputFull, match="disk nearly full .* stopped writing after 4 frames"):
        for img in frames(8, (64, 48)):
            out.write(img)
    out.close()
    assert len(read_video(path)) == 4


def test_image_outputs_pattern_and_folder(tmp_path):
    out = open_output(parse_output(str(tmp_path / "f_%i.png"), True)[0], fps=1.0)
    images = frames(3, (32, 24))
    for img in images:
        out.write(img)
    import cv2

    assert np.array_equal(cv2.imread(str(tmp_path / "f_2.png")), images[2])  # PNG: exact
    folder = open_output(parse_output(str(tmp_path / "dir") + "/", True)[0], fps=1.0)
    for img in images:
        folder.write(img)
    assert sorted(os.listdir(tmp_path / "dir")) == [f"frame_{i:06d}.jpg" for i in range(3)]
