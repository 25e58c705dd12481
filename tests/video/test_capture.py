import threading
import time

import numpy as np

from tdm_edge.video.capture import FrameGrabber
from tdm_edge.video.sources import FrameSource, SourceOptions


class ListSource(FrameSource):
    """Delivers ``count`` frames, each after ``period`` seconds (a camera's pace when period > 0)."""

    def __init__(self, count: int, period: float = 0.0, live: bool = False):
        super().__init__("list", SourceOptions())
        self.count, self.period, self.live = count, period, live
        self.closed = threading.Event()

    def read_impl(self):
        if self.read_count >= self.count:
            return None
        time.sleep(self.period)
        return np.full((2, 2, 3), self.read_count % 256, np.uint8)

    def close(self):
        self.closed.set()


def drain(grabber, delay: float):
    seen = []
    while True:
        frame = grabber.get(timeout=1.0)
        if frame is None:
            if grabber.finished:
                return seen
            continue
        assert frame.image[0, 0, 0] == frame.index % 256  # the frame carries its own number
        seen.append(frame.index)
        time.sleep(delay)


def test_file_mode_hands_out_every_frame_in_order():
    grabber = FrameGrabber(ListSource(30), keep_latest=False).start()
    assert drain(grabber, delay=0.002) == list(range(30))
    grabber.stop()
    assert (grabber.delivered, grabber.dropped) == (30, 0)


def test_live_mode_keeps_the_newest_and_counts_the_rest():
    grabber = FrameGrabber(ListSource(40, period=0.001, live=True), keep_latest=True).start()
    seen = drain(grabber, delay=0.01)  # the loop is ~10x slower than the camera
    grabber.stop()
    assert seen == sorted(seen) and seen[-1] == 39  # increasing, and the last frame is never dropped
    assert grabber.dropped > 0 and len(seen) + grabber.dropped == grabber.delivered == 40


def test_stop_counts_a_waiting_frame_and_closes_the_source():
    source = ListSource(1000, period=0.001, live=True)
    grabber = FrameGrabber(source, keep_latest=True).start()
    first = grabber.get(timeout=1.0)
    time.sleep(0.02)
    grabber.stop()
    assert first is not None and source.closed.is_set()
    assert grabber.dropped == grabber.delivered - 1  # everything but the frame taken
