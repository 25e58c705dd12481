"""A stand-in for OpenCV built with GStreamer and without FFmpeg, for subprocess tests of camera opens (put this
folder first on PYTHONPATH). Not OpenCV: it has what `tdm-edge run` touches before a frame arrives.

STANDIN_CV2_OPEN (what VideoCapture(pipeline) does): "block" (never returns, as OpenCV 4.6's GStreamer open of an
Argus pipeline does without a camera daemon), "fail" (returns a closed capture at once). Each call appends a line
to the file STANDIN_CV2_LOG, so a test knows the open has started and how many there were.
"""

import os
import threading

CAP_ANY, CAP_FFMPEG, CAP_GSTREAMER, CAP_V4L2 = 0, 1900, 1800, 200
CAP_PROP_FPS, CAP_PROP_FRAME_COUNT, CAP_PROP_FRAME_WIDTH, CAP_PROP_FRAME_HEIGHT, CAP_PROP_FOURCC = 5, 7, 3, 4, 6
INTER_AREA, INTER_LINEAR = 3, 1
__version__ = "0.0-standin"


def getBuildInformation():
    return "  Video I/O:\n    FFMPEG:                      NO\n    GStreamer:                   YES (stand-in)\n"


def setNumThreads(n):
    pass


class VideoCapture:
    def __init__(self, source, api=CAP_ANY, params=None):
        log = os.environ.get("STANDIN_CV2_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{api} {source}\n")
        self.opened = False
        if os.environ.get("STANDIN_CV2_OPEN", "block") == "block":
            threading.Event().wait()  # forever

    def isOpened(self):
        return self.opened

    def read(self):
        return False, None

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return False

    def release(self):
        pass
