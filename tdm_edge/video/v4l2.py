"""V4L2 camera modes: what a ``/dev/videoN`` offers (pixel format, size, frame rates), read with the kernel's
enumeration ioctls, and the mode jetson-utils' ``gstCamera::matchCaps`` would pick.

A USB2 webcam gives 1280x720 at 30 fps only as MJPG (YUYV at that size fits 10 fps into USB2's bandwidth), and
OpenCV's V4L2 backend takes YUYV unless told otherwise. :func:`choose_mode` picks the mode closest to the asked size
(1280x720 at 30 fps by default, as jetson-utils), then the higher frame rate (the rate of a mode is its rate
closest to the asked one), then uncompressed over MJPG at equal rates.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..errors import UsageError

DEFAULT_SIZE = (1280, 720)  # gstCamera::DefaultWidth/DefaultHeight
DEFAULT_RATE = 30.0  # gstCamera::discover
COMPRESSED = frozenset({"MJPG", "JPEG"})
# the pixel formats OpenCV's V4L2 backend converts to BGR itself (cap_v4l.cpp); H.264 cameras are not among them
DECODABLE = COMPRESSED | {"YUYV", "YVYU", "UYVY", "NV12", "NV21", "YU12", "YV12", "RGB3", "BGR3", "GREY"}

_BUF_TYPE_VIDEO_CAPTURE = 1
_DISCRETE = 1
_FMTDESC = struct.Struct("=III32sII3I")  # struct v4l2_fmtdesc: index, type, flags, description, pixelformat, ...
_FRMSIZE = struct.Struct("=III6I2I")  # struct v4l2_frmsizeenum: index, pixel_format, type, union(24 bytes), reserved
_FRMIVAL = struct.Struct("=IIIII6I2I")  # struct v4l2_frmivalenum: index, pixel_format, width, height, type, union


def _iowr(number: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("V") << 8) | number  # _IOWR('V', number, size)


VIDIOC_ENUM_FMT = _iowr(2, _FMTDESC.size)  # 0xC0405602
VIDIOC_ENUM_FRAMESIZES = _iowr(74, _FRMSIZE.size)  # 0xC02C564A
VIDIOC_ENUM_FRAMEINTERVALS = _iowr(75, _FRMIVAL.size)  # 0xC034564B


class Mode(NamedTuple):
    fourcc: str  # "MJPG", "YUYV", ...
    width: int
    height: int
    rates: tuple  # frames per second this size offers


def fourcc_text(code: int) -> str:
    return code.to_bytes(4, "little").decode("ascii", "replace").strip()


def fourcc_code(text: str) -> int:
    return int.from_bytes(text.ljust(4).encode("ascii"), "little")


def format_name(name: str) -> str | None:
    """``--input-format``: ``auto`` -> ``None``; a pixel format OpenCV decodes (``mjpg``, ``yuyv``...) -> its
    four-character code; anything else is one :class:`UsageError` line."""
    key = name.strip().upper()
    if key == "AUTO":
        return None
    if key not in DECODABLE:
        raise UsageError(f"unknown --input-format {name!r}; choose auto or one of {', '.join(sorted(DECODABLE))}")
    return key


def enumerate_modes(ioctl: Callable[[int, bytearray], object], asked: tuple = DEFAULT_SIZE) -> list[Mode]:
    """Every (format, size, rates) of a device through ``ioctl(request, buffer)`` (``fcntl.ioctl`` on its file
    descriptor; an ``OSError`` ends each enumeration, as the kernel's ``EINVAL`` does). Stepwise sizes give the
    asked size clamped to their range; stepwise intervals their fastest and slowest rates."""
    modes = []
    for fourcc in _each(ioctl, VIDIOC_ENUM_FMT, _FMTDESC, lambda i: (i, _BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0, 0, 0, 0),
                        lambda f: f[4]):
        sizes = _each(ioctl, VIDIOC_ENUM_FRAMESIZES, _FRMSIZE, lambda i: (i, fourcc, 0) + (0,) * 8,
                      lambda f: _size(f[2], f[3:9], asked))
        for width, height in sizes:
            rates = _each(ioctl, VIDIOC_ENUM_FRAMEINTERVALS, _FRMIVAL,
                          lambda i: (i, fourcc, width, height) + (0,) * 9, lambda f: _rates(f[4], f[5:11]))
            modes.append(Mode(fourcc_text(fourcc), width, height,
                              tuple(sorted({r for group in rates for r in group}, reverse=True))))
    return modes


def _each(ioctl, request: int, layout: struct.Struct, fields: Callable, pick: Callable, limit: int = 256) -> list:
    out = []
    for index in range(limit):
        buffer = bytearray(layout.pack(*fields(index)))
        try:
            ioctl(request, buffer)
        except OSError:
            break
        value = pick(layout.unpack(bytes(buffer)))
        out.append(value)
        if value is None:
            break
    return [v for v in out if v is not None]


def _size(kind: int, union: Sequence[int], asked: tuple) -> tuple | None:
    if kind == _DISCRETE:
        return union[0], union[1]
    min_w, max_w, step_w, min_h, max_h, step_h = union  # stepwise or continuous: one entry covers it all

    def clamp(value: int, low: int, high: int, step: int) -> int:
        value = min(max(value, low), high)
        return low + (value - low) // max(step, 1) * max(step, 1)

    return clamp(asked[0], min_w, max_w, step_w), clamp(asked[1], min_h, max_h, step_h)


def _rates(kind: int, union: Sequence[int]) -> tuple:
    if kind == _DISCRETE:
        num, den = union[0], union[1]
        return (den / num,) if num and den else ()
    fastest = union[1] / union[0] if union[0] else 0.0  # min interval
    slowest = union[3] / union[2] if union[2] else 0.0  # max interval
    return tuple(r for r in (fastest, slowest) if r > 0)


def device_modes(device: str) -> list[Mode]:
    """:func:`enumerate_modes` of a device node; ``[]`` when it cannot be asked (no such device, not Linux)."""
    try:
        import fcntl

        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except (ImportError, OSError):
        return []
    try:
        return enumerate_modes(lambda request, buffer: fcntl.ioctl(fd, request, buffer, True))
    finally:
        os.close(fd)


def choose_mode(modes: Sequence[Mode], width: int | None = None, height: int | None = None,
                rate: float | None = None, fourcc: str | None = None) -> tuple[Mode, float] | None:
    """The mode jetson-utils' matchCaps picks for the asked size and rate (defaults 1280x720, 30 fps) and the rate
    to ask for: closest size, then higher rate, then uncompressed before MJPG at equal rates (matchCaps lets the
    order of the driver's list decide that tie). ``fourcc`` keeps only that format. ``None``: nothing usable."""
    asked_w, asked_h = width or DEFAULT_SIZE[0], height or DEFAULT_SIZE[1]
    asked_rate = rate or DEFAULT_RATE
    best = None
    for mode in modes:
        if mode.fourcc not in DECODABLE or (fourcc is not None and mode.fourcc != fourcc):
            continue
        mode_rate = min(mode.rates, key=lambda r: abs(r - asked_rate)) if mode.rates else asked_rate  # findFramerate
        key = (abs(asked_w - mode.width) + abs(asked_h - mode.height), -mode_rate, mode.fourcc in COMPRESSED)
        if best is None or key < best[0]:
            best = (key, mode, mode_rate)
    return None if best is None else (best[1], best[2])
