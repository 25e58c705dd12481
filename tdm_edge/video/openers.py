"""How each capture source is opened with OpenCV: which backend, which pipeline or settings, what to say when it
fails. One :class:`Plan` per source kind; :func:`~tdm_edge.video.sources.open_source` runs it under a deadline.

Backends, as jetson-utils where we claim its URIs (docs/jetson_cameras.md):
- ``csi://N``: GStreamer only (``nvarguscamerasrc``). Where GStreamer's plugin folder has no Argus element, one
  line says so at once: OpenCV 4.6's open of that pipeline never returns (measured with Debian's python3-opencv).
- V4L2: OpenCV's V4L2 backend, in the pixel format and size :func:`~tdm_edge.video.v4l2.choose_mode` picks.
- RTSP: GStreamer's ``rtspsrc`` where OpenCV has GStreamer (hardware decoder when installed), else FFmpeg with
  ``--input-latency`` as FFmpeg options and OpenCV's own open/read timeouts.
- HTTP(S) (an IP camera's MJPEG, not a jetson-utils URI): FFmpeg.
- files: FFmpeg, or a GStreamer pipeline where OpenCV has no FFmpeg.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import UsageError
from .cvutil import GSTREAMER_HINT, build_has, cv2
from .pipelines import (csi_pipeline, ffmpeg_capture_options, file_pipeline, gst_has, gst_plugin_dirs, pick_decoder,
                        rtsp_pipeline)
from .v4l2 import choose_mode, device_modes, format_name

FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
ARGUS_HINT = ("; is a camera connected, and nvargus-daemon running? (sudo systemctl restart nvargus-daemon; "
              "a longer --input-timeout if the sensor is slow to start)")


@dataclass
class Plan:
    opener: Callable[[], object]  # -> a cv2.VideoCapture (opened or not)
    hint: str = ""  # ends the one-line error when the open fails
    flip_in_software: bool = True  # False: the pipeline flips (CSI: nvvidconv)
    notes: list[str] = field(default_factory=list)  # said in the run's summary (the backend, the chosen mode)


def plan_csi(uri: str, sensor: int, options) -> Plan:
    if not build_has("GStreamer"):
        raise UsageError(f"{uri} needs OpenCV with GStreamer; {GSTREAMER_HINT}")
    pipeline = csi_pipeline(sensor, options.width or 1280, options.height or 720, options.rate or 30, options.flip)
    if gst_has("nvarguscamerasrc") is False:
        folders = ", ".join(d for d in gst_plugin_dirs() if os.path.isdir(d))
        raise UsageError(f"{uri}: this system's GStreamer has no nvarguscamerasrc, JetPack's Argus camera element "
                         f"(L4T's nvidia-l4t-gstreamer; looked in {folders})")
    c = cv2()
    return Plan(lambda: c.VideoCapture(pipeline, c.CAP_GSTREAMER), ARGUS_HINT, flip_in_software=False,
                notes=[f"GStreamer: {pipeline}"])


def plan_v4l2(device: str, options) -> Plan:
    if options.codec not in (None, "mjpeg"):
        raise UsageError(f"--input-codec {options.codec} with {device}: OpenCV's V4L2 capture decodes MJPEG and raw "
                         "formats only (--input-codec mjpeg, or --input-format)")
    forced = format_name(options.pixel_format) or ("MJPG" if options.codec == "mjpeg" else None)
    notes: list[str] = []

    def opener():
        c = cv2()
        pick = choose_mode(device_modes(device), options.width, options.height, options.rate, forced)
        if pick is not None:
            mode, rate = pick
            fourcc, width, height = mode.fourcc, mode.width, mode.height
            notes[:] = [f"{device}: {fourcc} {width}x{height} at {rate:g} fps"]
        else:  # the driver could not be asked: what the user asked for, else the driver's default
            fourcc, width, height, rate = forced, options.width, options.height, options.rate
        cap = c.VideoCapture(device, c.CAP_V4L2)
        if fourcc:  # before the size: the driver's sizes depend on the format
            cap.set(c.CAP_PROP_FOURCC, c.VideoWriter_fourcc(*fourcc))
        for prop, value in ((c.CAP_PROP_FRAME_WIDTH, width), (c.CAP_PROP_FRAME_HEIGHT, height),
                            (c.CAP_PROP_FPS, rate)):
            if value:
                cap.set(prop, value)
        return cap

    return Plan(opener, "; is the camera connected (ls /dev/video*) and not in use by another program?",
                notes=notes)


def plan_rtsp(url: str, options) -> Plan:
    c = cv2()
    if build_has("GStreamer"):
        codec = options.codec
        decoder = pick_decoder(codec, options.decoder, gst_has("nvv4l2decoder") is True) if codec else "cpu"
        pipeline = rtsp_pipeline(url, options.latency, codec, decoder, gst_has("nvvidconv") is True)
        return Plan(lambda: c.VideoCapture(pipeline, c.CAP_GSTREAMER), "; is the stream up and reachable?",
                    notes=[f"GStreamer: {pipeline}"])
    if not build_has("FFMPEG"):
        raise UsageError(f"{url} needs OpenCV with FFmpeg or GStreamer; {GSTREAMER_HINT}")
    options_text = ffmpeg_capture_options(options.latency)
    notes = [f"FFmpeg: {FFMPEG_OPTIONS}={os.environ.get(FFMPEG_OPTIONS) or options_text}"]
    if options.codec:
        notes.append(f"--input-codec {options.codec} not used: FFmpeg finds the codec itself")
    return Plan(lambda: ffmpeg_capture(url, options.timeout, options_text), "; is the stream up and reachable?",
                notes=notes)


def plan_http(url: str, options) -> Plan:
    if not build_has("FFMPEG"):
        raise UsageError(f"{url} needs OpenCV with FFmpeg (pip install opencv-python reads HTTP streams)")
    return Plan(lambda: ffmpeg_capture(url, options.timeout), "; is the stream up and reachable?")


def ffmpeg_capture(location: str, timeout: float, options_text: str | None = None):
    """A ``cv2.VideoCapture`` on FFmpeg whose own open and read give up after ``timeout`` (OpenCV >= 4.5.2), with
    ``options_text`` in ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` while it opens (the user's own setting wins; OpenCV reads
    it when it opens, so later FFmpeg opens in this process, a video file say, do not get it)."""
    c = cv2()
    params = [getattr(c, name) for name in ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC")
              if hasattr(c, name)]
    ours = options_text is not None and FFMPEG_OPTIONS not in os.environ
    if ours:
        os.environ[FFMPEG_OPTIONS] = options_text
    try:
        if params:
            try:
                return c.VideoCapture(location, c.CAP_FFMPEG, [v for p in params for v in (p, int(timeout * 1000))])
            except TypeError:  # an OpenCV without the params overload
                pass
        return c.VideoCapture(location, c.CAP_FFMPEG)
    finally:
        if ours:
            os.environ.pop(FFMPEG_OPTIONS, None)


def plan_file(path: str, options) -> Plan:
    c = cv2()
    if build_has("FFMPEG"):
        return Plan(lambda: c.VideoCapture(path, c.CAP_FFMPEG))
    if not build_has("GStreamer"):
        raise UsageError(f"{path}: this OpenCV has neither FFmpeg nor GStreamer to read videos")
    codec = options.codec
    decoder = pick_decoder(codec, options.decoder, gst_has("nvv4l2decoder") is True) if codec else "cpu"
    pipeline = file_pipeline(path, codec, decoder, gst_has("nvvidconv") is True)
    return Plan(lambda: c.VideoCapture(pipeline, c.CAP_GSTREAMER),
                "" if codec else " (GStreamer's decodebin; --input-codec names the codec)",
                notes=[f"GStreamer: {pipeline}"])

