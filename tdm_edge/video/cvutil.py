"""OpenCV, imported quietly and only when needed, and the facts about this build the loop depends on."""

from __future__ import annotations

import functools
import os

from ..errors import UsageError

CV2_HINT = ("OpenCV is needed for the camera/video loop: pip install 'tdm-edge[camera]' "
            "(on a Jetson use JetPack's OpenCV instead: sudo apt install python3-opencv)")
GSTREAMER_HINT = ("this OpenCV has no GStreamer: on a Jetson use JetPack's OpenCV (sudo apt install python3-opencv, "
                  "and pip uninstall opencv-python so that it is not shadowed)")


@functools.lru_cache(maxsize=None)  # functools.cache is 3.9+
def cv2():
    """The ``cv2`` module with OpenCV's and FFmpeg's own logging silenced (we report failures in one line)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used: AV_LOG_QUIET
    try:
        import cv2 as module
    except ImportError:
        raise UsageError(CV2_HINT) from None
    logging = getattr(getattr(module, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    return module


def build_has(feature: str) -> bool:
    """Whether ``cv2.getBuildInformation()`` lists ``feature`` (e.g. ``GStreamer``, ``FFMPEG``) as ``YES``."""
    for line in cv2().getBuildInformation().splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == feature.lower():
            return value.strip().upper().startswith("YES")
    return False


def has_display() -> bool:
    """Whether a window can be opened: an X11 or Wayland display on Linux (always assumed elsewhere)."""
    if os.name != "posix" or os.uname().sysname == "Darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
