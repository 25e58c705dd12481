"""Every open of a source under a deadline: OpenCV's open of a GStreamer pipeline or a stream can block for ever
(a CSI pipeline without ``nvarguscamerasrc``, an RTSP server that never answers), and Ctrl-C must still work."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
