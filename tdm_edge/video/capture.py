"""The capture thread: reads a :class:`~tdm_edge.video.sources.FrameSource` ahead of the loop.

For a live source it keeps only the newest frame: a frame that was not taken before the next one arrived is
dropped and counted, so the loop never works on a backlog (a camera does not wait). For a file it waits instead
(a one-frame queue): every frame is processed while decoding the next overlaps with inference. Frames are numbered
in read order, so the loop can tell exactly which ones were dropped.

:func:`~tdm_edge.video.deadline.open_within` gives every open a deadline: OpenCV's open of a GStreamer pipeline
or a stream can block for good (an Argus camera whose daemon hangs, a host that never answers) and, being C code,
ignores Ctrl-C.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .sources import FrameSource


@dataclass
class Frame:
    index: int  # 0-based, in the order the source delivered frames
    image: np.ndarray
    capture_s: float  # time the source took to deliver it (decode, camera wait)


class FrameGrabber:
    """Runs ``source.read()`` in a thread; :meth:`get` hands out the newest frame.

    Args:
        source: the frame source (owned: closed when the grabber stops).
        keep_latest: drop frames the loop did not take in time (live sources); ``False`` waits for the loop.
    """

    def __init__(self, source: FrameSource, keep_latest: bool) -> None:
        self.source = source
        self.keep_latest = keep_latest
        self.delivered = 0  # frames read from the source
        self.dropped = 0  # replaced before the loop took them
        self.error: BaseException | None = None
        self._slot: Frame | None = None
        self._ended = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tdm-edge-capture", daemon=True)

    def start(self) -> "FrameGrabber":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while True:
                start = time.perf_counter()
                image = self.source.read()
                elapsed = time.perf_counter() - start
                with self._cond:
                    if image is None or self._stopping:
                        return
                    frame = Frame(self.delivered, image, elapsed)
                    self.delivered += 1
                    if not self.keep_latest:
                        self._cond.wait_for(lambda: self._slot is None or self._stopping)
                        if self._stopping:
                            self.dropped += 1  # read but never handed out
                            return
                    elif self._slot is not None:
                        self.dropped += 1
                    self._slot = frame
                    self._cond.notify_all()
        except BaseException as err:  # handed to the loop, which reports it in one line
            self.error = err
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, or ``None`` on timeout or at the end (then :attr:`finished` is true)."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout)
            frame, self._slot = self._slot, None
            self._cond.notify_all()
            return frame

    @property
    def finished(self) -> bool:
        """The source ended (or failed: see :attr:`error`) and every frame it delivered was handed out."""
        with self._cond:
            return self._ended and self._slot is None

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading, count a frame still waiting as dropped, close the source."""
        with self._cond:
            self._stopping = True
            if self._slot is not None:
                self.dropped += 1
                self._slot = None
            self._cond.notify_all()
        self._thread.join(timeout)  # a camera read blocks at most a frame period; the thread is a daemon anyway
        if not self._thread.is_alive():
            self.source.close()
