"""V4L2 modes: the kernel's enumeration ioctls (a stand-in device answers them: no camera here) and the choice
jetson-utils' gstCamera::matchCaps makes."""

import errno
import struct

import pytest

from tdm_edge.errors import UsageError
from tdm_edge.video.v4l2 import (VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMEINTERVALS, VIDIOC_ENUM_FRAMESIZES, Mode,
                                 choose_mode, enumerate_modes, format_name, fourcc_code, fourcc_text)

# a USB2 webcam as `v4l2-ctl --list-formats-ext` shows one: YUYV is slow at 720p, MJPG is not
WEBCAM = {"YUYV": {(640, 480): [30, 15], (1280, 720): [10, 5]},
          "MJPG": {(640, 480): [30, 15], (1280, 720): [30, 15], (1920, 1080): [30]},
          "H264": {(1920, 1080): [30]}}


class StandInV4L2Device:
    """Answers VIDIOC_ENUM_FMT / ENUM_FRAMESIZES / ENUM_FRAMEINTERVALS as the kernel does (EINVAL past the end),
    from ``formats`` = {fourcc: {(w, h): [fps...]}}; ``stepwise`` = {fourcc: (min_w, max_w, step, ...)}."""

    def __init__(self, formats, stepwise=None):
        self.formats, self.stepwise = formats, stepwise or {}

    def __call__(self, request, buffer):
        if request == VIDIOC_ENUM_FMT:
            fields = list(struct.unpack("=III32sII3I", buffer))
            names = list(self.formats) + list(self.stepwise)
            if fields[0] >= len(names) or fields[1] != 1:
                raise OSError(errno.EINVAL, "Invalid argument")
            fields[4] = fourcc_code(names[fields[0]])
            buffer[:] = struct.pack("=III32sII3I", *fields)
        elif request == VIDIOC_ENUM_FRAMESIZES:
            fields = list(struct.unpack("=III6I2I", buffer))
            name = fourcc_text(fields[1])
            if name in self.stepwise:
                if fields[0] > 0:
                    raise OSError(errno.EINVAL, "Invalid argument")
                fields[2:9] = [3, *self.stepwise[name][:6]]
            else:
                sizes = list(self.formats[name])
                if fields[0] >= len(sizes):
                    raise OSError(errno.EINVAL, "Invalid argument")
                fields[2:5] = [1, *sizes[fields[0]]]
            buffer[:] = struct.pack("=III6I2I", *fields)
        elif request == VIDIOC_ENUM_FRAMEINTERVALS:
            fields = list(struct.unpack("=IIIII6I2I", buffer))
            name = fourcc_text(fields[1])
            if name in self.stepwise:
                if fields[0] > 0:
                    raise OSError(errno.EINVAL, "Invalid argument")
                fields[4:11] = [3, *self.stepwise[name][6:]]  # min, max, step intervals as fractions
            else:
                rates = self.formats[name][(fields[2], fields[3])]
                if fields[0] >= len(rates):
                    raise OSError(errno.EINVAL, "Invalid argument")
                fields[4:7] = [1, 1, rates[fields[0]]]  # interval 1/fps
            buffer[:] = struct.pack("=IIIII6I2I", *fields)
        else:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")


def test_ioctl_numbers_are_the_kernels():
    assert (VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMESIZES, VIDIOC_ENUM_FRAMEINTERVALS) == (0xC0405602, 0xC02C564A,
                                                                                     0xC034564B)


def test_enumerate_reads_every_format_size_and_rate():
    modes = enumerate_modes(StandInV4L2Device(WEBCAM))
    assert modes == [Mode("YUYV", 640, 480, (30.0, 15.0)), Mode("YUYV", 1280, 720, (10.0, 5.0)),
                     Mode("MJPG", 640, 480, (30.0, 15.0)), Mode("MJPG", 1280, 720, (30.0, 15.0)),
                     Mode("MJPG", 1920, 1080, (30.0,)), Mode("H264", 1920, 1080, (30.0,))]


def test_enumerate_stepwise_takes_the_asked_size_in_range():
    # sizes 160..1920 step 16 x 120..1080 step 8; intervals 1/60 .. 1/5 s
    device = StandInV4L2Device({}, {"GREY": (160, 1920, 16, 120, 1080, 8, 1, 60, 1, 5, 1, 1)})
    assert enumerate_modes(device, asked=(1000, 700)) == [Mode("GREY", 992, 696, (60.0, 5.0))]
    assert enumerate_modes(device, asked=(4000, 50)) == [Mode("GREY", 1920, 120, (60.0, 5.0))]


def test_default_choice_is_mjpg_at_720p_30_on_a_usb2_webcam():
    modes = enumerate_modes(StandInV4L2Device(WEBCAM))
    assert choose_mode(modes) == (Mode("MJPG", 1280, 720, (30.0, 15.0)), 30.0)


def test_equal_rates_keep_the_uncompressed_format():
    modes = enumerate_modes(StandInV4L2Device(WEBCAM))
    assert choose_mode(modes, 640, 480) == (Mode("YUYV", 640, 480, (30.0, 15.0)), 30.0)
    assert choose_mode(list(reversed(modes)), 640, 480)[0].fourcc == "YUYV"  # whatever the driver's order


def test_forced_format_and_closest_size_and_rate():
    modes = enumerate_modes(StandInV4L2Device(WEBCAM))
    assert choose_mode(modes, fourcc="YUYV") == (Mode("YUYV", 1280, 720, (10.0, 5.0)), 10.0)
    assert choose_mode(modes, 1920, 1080, 25) == (Mode("MJPG", 1920, 1080, (30.0,)), 30.0)
    assert choose_mode(modes, 1280, 720, 14) == (Mode("MJPG", 1280, 720, (30.0, 15.0)), 15.0)  # closest rate
    assert choose_mode([Mode("H264", 1920, 1080, (30.0,))]) is None  # OpenCV's V4L2 capture cannot decode it
    assert choose_mode([]) is None


def test_format_names():
    assert format_name("auto") is None and format_name("mjpg") == "MJPG" and format_name("yuyv") == "YUYV"
    with pytest.raises(UsageError, match="unknown --input-format 'h264'"):
        format_name("h264")


class StandInCapture:
    """Stands in for cv2.VideoCapture on a V4L2 device (no camera here): records what is asked of it."""

    def __init__(self, device, api):
        self.calls = [("open", device, api)]

    def set(self, prop, value):
        self.calls.append((prop, value))
        return True


def test_v4l2_opener_asks_for_the_chosen_mode_format_first(monkeypatch):
    import types

    import cv2

    from tdm_edge.video import openers
    from tdm_edge.video.sources import SourceOptions

    names = ("CAP_V4L2", "CAP_PROP_FOURCC", "CAP_PROP_FPS", "CAP_PROP_FRAME_WIDTH", "CAP_PROP_FRAME_HEIGHT")
    stand_in_cv2 = types.SimpleNamespace(VideoCapture=StandInCapture, VideoWriter_fourcc=cv2.VideoWriter_fourcc,
                                         **{name: getattr(cv2, name) for name in names})
    monkeypatch.setattr(openers, "cv2", lambda: stand_in_cv2)
    monkeypatch.setattr(openers, "device_modes", lambda device: enumerate_modes(StandInV4L2Device(WEBCAM)))
    plan = openers.plan_v4l2("/dev/video0", SourceOptions())
    cap = plan.opener()
    assert cap.calls == [("open", "/dev/video0", cv2.CAP_V4L2), (cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG")),
                         (cv2.CAP_PROP_FRAME_WIDTH, 1280), (cv2.CAP_PROP_FRAME_HEIGHT, 720), (cv2.CAP_PROP_FPS, 30.0)]
    assert plan.notes == ["/dev/video0: MJPG 1280x720 at 30 fps"]
    cap = openers.plan_v4l2("/dev/video0", SourceOptions(pixel_format="yuyv", width=640)).opener()
    assert cap.calls[1:] == [(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"YUYV")), (cv2.CAP_PROP_FRAME_WIDTH, 640),
                             (cv2.CAP_PROP_FRAME_HEIGHT, 480), (cv2.CAP_PROP_FPS, 30.0)]
    with pytest.raises(UsageError, match="--input-codec h264 with /dev/video0: OpenCV's V4L2 capture decodes MJPEG"):
        openers.plan_v4l2("/dev/video0", SourceOptions(codec="h264"))
