"""OpenCV, imported quietly and only when needed, and the facts about this build the loop depends on."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys

from ..errors import UsageError

# JetPack's OpenCV is the nvidia-opencv package (Ubuntu's python3-opencv conflicts with it); a venv sees it only when
# made with --system-site-packages (docs/jetson.md)
CV2_HINT = ("OpenCV is needed for the camera/video loop: pip install 'tdm-edge[camera]' (on a Jetson use JetPack's "
            "OpenCV instead: sudo apt install nvidia-opencv, in a venv made with --system-site-packages)")
GSTREAMER_HINT = ("this OpenCV has no GStreamer: on a Jetson use JetPack's OpenCV (sudo apt install nvidia-opencv, "
                  "and pip uninstall opencv-python so that it is not shadowed)")


@functools.lru_cache(maxsize=None)  # functools.cache is 3.9+
def cv2():
    """The ``cv2`` module with OpenCV's and FFmpeg's own logging silenced (we report failures in one line)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used: AV_LOG_QUIET
    noise = io.StringIO()
    try:
        with contextlib.redirect_stderr(noise):  # numpy 2 prints a page before an OpenCV built for 1.x fails
            import cv2 as module
    except (ImportError, AttributeError) as err:
        raise UsageError(import_failure(err, noise.getvalue())) from None
    sys.stderr.write(noise.getvalue())  # a successful import's own warnings are not ours to hide
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


# apt packages (Debian/Ubuntu, JetPack) that provide the libraries a pip OpenCV most often misses
_LIBRARY_PACKAGES = {"libGL.so.1": "libgl1", "libgthread-2.0.so.0": "libglib2.0-0", "libglib-2.0.so.0": "libglib2.0-0",
                     "libSM.so.6": "libsm6", "libXext.so.6": "libxext6", "libXrender.so.1": "libxrender1"}
_NUMPY_ABI = ("multiarray failed to import", "_ARRAY_API", "compiled using NumPy", "compiled against API version",
              "numpy.core._multiarray_umath")


def import_failure(err: BaseException, noise: str = "", numpy_version: str | None = None) -> str:
    """Why ``import cv2`` failed and how to fix it, in one line (not only "OpenCV is needed").

    Args:
        err: what ``import cv2`` raised.
        noise: what the import printed on stderr meanwhile (numpy 2 explains an ABI mismatch there).
        numpy_version: the numpy that imported (default: ``sys.modules["numpy"]``'s, if any).
    """
    if isinstance(err, ImportError) and err.name == "cv2":  # no cv2 at all (not a failure inside it)
        return CV2_HINT
    text = f"{err}\n{noise}"
    if numpy_version is None:
        numpy_version = getattr(sys.modules.get("numpy"), "__version__", None)
    if any(marker in text for marker in _NUMPY_ABI):
        if numpy_version and int(numpy_version.split(".")[0]) >= 2:
            return (f"numpy {numpy_version} is installed but this OpenCV was built for numpy 1.x: pip install "
                    "'numpy<2' (on a Jetson: pip uninstall numpy, so that JetPack's own numpy is used)")
        return (f"this OpenCV was built for another numpy than {numpy_version or 'the one installed'}: install the "
                "numpy it was built with (pip install -U 'numpy<2' for a numpy 1.x build), or an OpenCV for this numpy")
    missing = re.search(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file", text)
    if missing:
        library = missing.group(1)
        package = _LIBRARY_PACKAGES.get(library)
        fix = f"sudo apt install {package}" if package else f"install the package that provides {library}"
        return (f"OpenCV does not import: the shared library {library} is missing ({fix}; or, off a Jetson, "
                "pip install opencv-python-headless, which needs no GUI libraries)")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"OpenCV does not import ({first}); tdm-edge doctor shows which OpenCV this Python finds"
