"""GStreamer pipelines for OpenCV's ``CAP_GSTREAMER``, written the way jetson-utils' ``gstCamera``/``gstDecoder``
write theirs, ending in BGR frames for OpenCV; jetson-utils' option names and spellings; the FFmpeg options that
stand in for ``--input-latency`` where OpenCV reads streams with FFmpeg.

Pure functions on strings (no OpenCV, no GStreamer here), so every pipeline is asserted exactly in the tests. The
one look at the system is :func:`gst_has`, which finds a GStreamer element's plugin library on disk.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence

from ..errors import UsageError

# jetson-utils' FlipMethod, in nvvidconv's flip-method order (0..7); the names are videoflip's method names
FLIPS = ("none", "counterclockwise", "rotate-180", "clockwise", "horizontal-flip", "upper-right-diagonal",
         "vertical-flip", "upper-left-diagonal")
FLIP_ALIASES = {"horizontal": "horizontal-flip", "vertical": "vertical-flip"}  # FlipMethodFromStr accepts these too
# jetson-utils' --input-codec names (CodecFromStr, case-insensitive), without "raw"
CODECS = ("h264", "h265", "vp8", "vp9", "mpeg2", "mpeg4", "mjpeg")
DECODERS = ("auto", "cpu", "v4l2")  # jetson-utils' --input-decoder: cpu (libav) or v4l2 (nvv4l2decoder, JetPack 5+)
DEFAULT_LATENCY_MS = 10  # jetson-utils' videoOptions latency (rtspsrc's own default is 2000)

_DEPAY = {"h264": "rtph264depay", "h265": "rtph265depay", "vp8": "rtpvp8depay", "vp9": "rtpvp9depay",
          "mpeg2": "rtpmp2tdepay", "mpeg4": "rtpmp4vdepay", "mjpeg": "rtpjpegdepay"}
_PARSE = {"h264": "h264parse", "h265": "h265parse", "mpeg2": "mpegvideoparse", "mpeg4": "mpeg4videoparse"}
_CPU_DECODER = {"h264": "avdec_h264", "h265": "avdec_h265", "vp8": "vp8dec", "vp9": "vp9dec",
                "mpeg2": "avdec_mpeg2video", "mpeg4": "avdec_mpeg4", "mjpeg": "jpegdec"}
_DEMUX = {"mkv": "matroskademux", "webm": "matroskademux", "mp4": "qtdemux", "qt": "qtdemux", "mov": "qtdemux",
          "flv": "flvdemux", "avi": "avidemux", "h264": "", "h265": ""}  # gstDecoder's extensions
# the plugin library that holds each element :func:`gst_has` is asked about
_PLUGIN_LIBRARY = {"nvarguscamerasrc": "nvarguscamerasrc", "nvv4l2decoder": "nvvideo4linux2",
                   "nvvidconv": "nvvidconv"}
_BGR = "videoconvert ! video/x-raw, format=(string)BGR ! "
LIVE_SINK = "appsink drop=true max-buffers=1 sync=false"  # a camera does not wait: keep only the newest frame
FILE_SINK = "appsink sync=false"  # every frame, as fast as the loop takes them


def flip_name(name: str) -> str:
    """jetson-utils' ``--input-flip`` spellings (case-insensitive, ``horizontal`` for ``horizontal-flip``) ->
    the name in :data:`FLIPS`; :class:`UsageError` otherwise."""
    key = name.strip().lower()
    key = FLIP_ALIASES.get(key, key)
    if key not in FLIPS:
        raise UsageError(f"unknown --input-flip {name!r}; choose one of {', '.join(FLIPS)} (or horizontal, vertical)")
    return key


def codec_name(name: str) -> str:
    """jetson-utils' ``--input-codec`` spellings (``H264``, ``h264``, ``MJPEG``...) -> the name in :data:`CODECS`."""
    key = name.strip().lower()
    if key not in CODECS:
        raise UsageError(f"unknown --input-codec {name!r}; choose one of {', '.join(CODECS)}")
    return key


def csi_flip_method(flip: str) -> int:
    """nvvidconv's flip-method for a CSI camera: jetson-utils swaps ``none`` and ``rotate-180`` there (JetPack 4.2
    and later: most CSI sensors are mounted upside down), so ``--input-flip none`` gives flip-method 2."""
    method = FLIPS.index(flip_name(flip))
    return {0: 2, 2: 0}.get(method, method)


def framerate(rate: float) -> str:
    """GStreamer's fraction for a frame rate: ``30/1`` as jetson-utils writes it, ``29970/1000`` for 29.97."""
    return f"{int(rate)}/1" if float(rate).is_integer() else f"{int(round(rate * 1000))}/1000"


def quote(value: str) -> str:
    """A property value for ``gst_parse_launch``: as is when plain, else double-quoted with ``\\`` and ``"``
    escaped (a path with spaces, a URL with ``!``)."""
    if re.fullmatch(r"[A-Za-z0-9/._:@=?&%+~,-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def csi_pipeline(sensor: int, width: int = 1280, height: int = 720, rate: float = 30, flip: str = "none") -> str:
    """A Jetson CSI camera, as jetson-utils' gstCamera builds it (flip swap included), converted to BGR."""
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width=(int){width}, "
            f"height=(int){height}, framerate={framerate(rate)}, format=(string)NV12 ! "
            f"nvvidconv flip-method={csi_flip_method(flip)} ! video/x-raw, format=(string)BGRx ! {_BGR}{LIVE_SINK}")


def pick_decoder(codec: str, decoder: str, has_nvv4l2decoder: bool) -> str:
    """``cpu`` or ``v4l2`` (nvv4l2decoder) as jetson-utils' gst_select_decoder picks: MJPEG always on the CPU;
    ``auto`` takes the hardware decoder when it is installed."""
    if decoder not in DECODERS:
        raise UsageError(f"unknown --input-decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if codec == "mjpeg":
        return "cpu"
    if decoder == "auto":
        return "v4l2" if has_nvv4l2decoder else "cpu"
    return decoder


def _decode(codec: str, kind: str) -> str:
    """The decoder and what follows it up to BGR (jetson-utils' ``name=decoder`` and V4L2 options)."""
    if kind == "v4l2":
        return ("nvv4l2decoder name=decoder enable-max-performance=1 ! video/x-raw(memory:NVMM) ! "
                f"nvvidconv ! video/x-raw, format=(string)BGRx ! {_BGR}")
    return f"{_CPU_DECODER[codec]} name=decoder ! video/x-raw ! {_BGR}"


def _autodecode(has_nvvidconv: bool) -> str:
    """decodebin picks demuxer and decoder; nvvidconv (Jetson) takes NVMM or system memory from either decoder."""
    return "decodebin ! " + ("nvvidconv ! video/x-raw, format=(string)BGRx ! " if has_nvvidconv else "") + _BGR


def rtsp_pipeline(url: str, latency: int = DEFAULT_LATENCY_MS, codec: str | None = None, decoder: str = "cpu",
                  has_nvvidconv: bool = False) -> str:
    """An RTSP stream as gstDecoder reads it: ``rtspsrc latency=`` (ms), depayloader, parser (not before the V4L2
    decoder, as there), decoder. Without a codec, ``decodebin`` finds it (jetson-utils asks GstDiscoverer)."""
    head = f"rtspsrc location={quote(url)} latency={int(latency)} ! queue ! "
    if codec is None:
        return head + _autodecode(has_nvvidconv) + LIVE_SINK
    parse = f"{_PARSE[codec]} ! " if codec in _PARSE and decoder != "v4l2" else ""
    return f"{head}{_DEPAY[codec]} ! {parse}{_decode(codec, decoder)}{LIVE_SINK}"


def file_pipeline(path: str, codec: str | None = None, decoder: str = "cpu", has_nvvidconv: bool = False) -> str:
    """A video file as gstDecoder reads it: demuxer by extension, ``queue``, parser, decoder. Without a codec,
    ``decodebin`` finds demuxer and decoder."""
    if codec is None:
        return f"filesrc location={quote(path)} ! {_autodecode(has_nvvidconv)}{FILE_SINK}"
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in _DEMUX:
        raise UsageError(f"--input-codec with a .{ext} file: GStreamer's path reads {', '.join(sorted(_DEMUX))}")
    demux = f"{_DEMUX[ext]} ! " if _DEMUX[ext] else ""
    parse = f"{_PARSE[codec]} ! " if codec in _PARSE else ""
    return f"filesrc location={quote(path)} ! {demux}queue ! {parse}{_decode(codec, decoder)}{FILE_SINK}"


def ffmpeg_capture_options(latency_ms: int) -> str:
    """``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for an RTSP stream read by FFmpeg: no input buffering and the RTP reorder
    delay (``max_delay``, microseconds) set to ``--input-latency``, FFmpeg's nearest to rtspsrc's jitter buffer."""
    return f"fflags;nobuffer|max_delay;{int(latency_ms) * 1000}"


def gst_plugin_dirs(environ: dict | None = None) -> list[str]:
    """Where GStreamer 1.0 looks for plugins: ``GST_PLUGIN_PATH(_1_0)``, then ``GST_PLUGIN_SYSTEM_PATH(_1_0)``
    or the system folders (``/usr/lib/<triplet>/gstreamer-1.0`` on Debian and JetPack)."""
    env = os.environ if environ is None else environ

    def split(*names: str) -> list[str]:
        for name in names:
            if env.get(name):
                return [p for p in env[name].split(os.pathsep) if p]
        return []

    system = split("GST_PLUGIN_SYSTEM_PATH_1_0", "GST_PLUGIN_SYSTEM_PATH")
    if not system:
        system = sorted(glob.glob("/usr/lib/*/gstreamer-1.0")) + ["/usr/lib/gstreamer-1.0",
                                                                  "/usr/local/lib/gstreamer-1.0"]
    return split("GST_PLUGIN_PATH_1_0", "GST_PLUGIN_PATH") + system


def gst_has(element: str, dirs: Sequence[str] | None = None) -> bool | None:
    """Whether GStreamer's ``element`` is installed: ``True`` when its plugin library is in a plugin folder,
    ``False`` when GStreamer's own core plugin is there but this one is not, ``None`` when no GStreamer plugin
    folder was found (then nothing is known; the open itself will tell)."""
    folders = gst_plugin_dirs() if dirs is None else list(dirs)
    library = f"libgst{_PLUGIN_LIBRARY.get(element, element)}.so"
    if _found(folders, library):
        return True
    return False if _found(folders, "libgstcoreelements.so") else None


def _found(folders: Iterable[str], library: str) -> bool:
    return any(os.path.isfile(os.path.join(folder, library)) for folder in folders)
