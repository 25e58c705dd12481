"""The capture thread: reads a :class:`~tdm_edge.video.sources.FrameSource` ahead of the loop.

For a live source it keeps only the newest frame: a frame that was not taken before the next one arrived is
dropped and counted, so the loop never works on a backlog (a camera does not wait). For a file it waits instead
(a one-frame queue): every frame is processed while decoding the next overlaps with inference. Frames are numbered
in read order, so the loop can tell exactly which ones were dropped.

:func:`open_within` gives every open a deadline: OpenCV's open of a GStreamer pipeline or a stream can block for
good (an Argus camera whose daemon hangs, a host that never answers) and, being C code, ignores Ctrl-C.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # sources imports this module (open_within)
    from .sources import FrameSource


class OpenTimeout(RuntimeError):
    """An open did not return within its deadline; it was abandoned (what it returns later is released)."""


def open_within(opener: Callable[[], object], timeout: float, poll: float = 0.05) -> object:
    """``opener()`` in a daemon thread; its result, its exception, or :class:`OpenTimeout` after ``timeout`` s.

    The calling thread waits in slices of ``poll`` seconds, so SIGINT's ``KeyboardInterrupt`` reaches it at once
    (and abandons the open like a timeout). An abandoned open that returns later has its capture released.
    """
    done = threading.Event()
    box: dict = {}
    lock = threading.Lock()

    def work() -> None:
        try:
            result = opener()
        except BaseException as err:  # handed to the caller
            box["error"] = err
        else:
            with lock:
                abandoned = box.get("abandoned", False)
                box["result"] = result
            if abandoned and hasattr(result, "release"):
                result.release()
        finally:
            done.set()

    threading.Thread(target=work, name="tdm-edge-open", daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while not done.wait(max(0.0, min(poll, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise OpenTimeout(f"no answer within {timeout:g} s")
    except BaseException:
        with lock:
            box["abandoned"] = True
            late = box.get("result")
        if late is not None and hasattr(late, "release"):  # it returned just now: release it here
            late.release()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


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
