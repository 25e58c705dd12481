"""The main loop, in the shape of jetson-inference's ``imagenet.py``: capture, classify, draw, render, until the
input ends, the window closes or a signal arrives.

Every frame the source delivered is accounted for: processed, or dropped by the capture thread (a live source
runs ahead of the loop). ``--log`` gets one JSON line per delivered frame, dropped ones included, flushed as it
goes. SIGINT and SIGTERM stop the loop between frames; the outputs are finalised and the summary printed in every
case (end of input, window closed, signal, lost source, full disk).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from ..runners.base import Runner
from ..runners.preprocess import preprocess
from .capture import Frame, FrameGrabber
from .outputs import Output, OutputClosed, OutputFull
from .overlay import Overlay
from .quantiles import StreamingQuantiles
from .sources import SourceLost
from .tokens import token_maps

STAGES = ("capture", "preprocess", "inference", "overlay", "output")


class StopSignals:
    """SIGINT/SIGTERM set :attr:`reason` (the loop stops between frames); a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = f"stopped by {signal.Signals(signum).name}"

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def top_k(logits: np.ndarray, k: int) -> list[tuple[int, float]]:
    """``[C]`` logits -> the ``k`` most probable ``(class, softmax probability)``, best first."""
    z = logits.astype(np.float64) - logits.max()
    probs = np.exp(z) / np.exp(z).sum()  # [C]
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), float(probs[i])) for i in order]


@dataclass
class Summary:
    delivered: int = 0
    processed: int = 0
    dropped: int = 0
    reason: str = "end of input"
    exit_code: int = 0
    seconds: float = 0.0
    # per-stage milliseconds in fixed memory (a loop may run for days): medians within 0.25 %
    ms: dict[str, StreamingQuantiles] = field(default_factory=lambda: {s: StreamingQuantiles() for s in STAGES})
    loop_ms: StreamingQuantiles = field(default_factory=StreamingQuantiles)  # all but capture and inference
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def quantile_ms(self, stage: str, q: float) -> float:
        """The ``q`` quantile of a stage's milliseconds per frame (``"loop"``: the loop's own overhead)."""
        return (self.loop_ms if stage == "loop" else self.ms[stage]).quantile(q)

    def median_ms(self, stage: str) -> float:
        return self.quantile_ms(stage, 0.5)

    def lines(self) -> list[str]:
        stages = ", ".join(f"{s} {self.median_ms(s):.1f}" for s in STAGES)
        return [f"{self.reason}: {self.delivered} frames read, {self.processed} processed, {self.dropped} dropped; "
                f"{self.fps:.1f} FPS over {self.seconds:.1f} s",
                f"ms per frame (median): {stages}; loop overhead {self.median_ms('loop'):.1f}", *self.notes]


class FrameLog:
    """``--log``: one JSON object per line, per delivered frame, flushed per line."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def write(self, record: dict) -> None:
        if self.stream is not None:
            try:
                self.stream.write(json.dumps(record) + "\n")
                self.stream.flush()
            except OSError as err:
                if err.errno == 28:  # ENOSPC: stop logging, report once
                    self.stream = None
                    raise OutputFull("disk full writing the --log file; the outputs are finalised") from None
                raise


def run_loop(grabber: FrameGrabber, runner: Runner, meta: dict, overlay: Overlay, outputs: Sequence[Output],
             topk: int = 5, selections: Sequence[str] = (), log: FrameLog | None = None,
             stop: StopSignals | None = None, max_frames: int | None = None, progress=None,
             exact_resize: bool = False) -> Summary:
    """Run until the input ends (or a stop); always finalises ``outputs`` and stops ``grabber``.

    Args:
        grabber: a started :class:`FrameGrabber`.
        runner: an active runner whose model is described by ``meta``.
        selections: selection output names to read for the token map (empty: no token map).
        max_frames: stop after this many processed frames.
        progress: a tqdm bar (or ``None``), advanced per processed frame.
        exact_resize: resize whole frames as calibration does, instead of only the pixels under the crop
            (:func:`tdm_edge.runners.preprocess.preprocess`'s ``fast``: about 0.8 ms instead of 6.5 ms at 1280x720).
    """
    log = log or FrameLog(None)
    summary = Summary()
    prep, reduction = meta["preprocessing"], meta.get("reduction", {})
    num_patches = overlay.grid[0] * overlay.grid[1]
    ema: dict[str, float] = {}
    start, last_index, done = time.perf_counter(), -1, None
    try:
        while not (stop and stop.reason) and not (max_frames and summary.processed >= max_frames):
            frame = grabber.get(timeout=0.25)
            if frame is None:  # a timeout, as imagenet.py's Capture(); or the end
                if grabber.finished:
                    if isinstance(grabber.error, SourceLost):
                        summary.reason, summary.exit_code = str(grabber.error), 1
                    elif grabber.error is not None:
                        raise grabber.error
                    break
                continue
            for index in range(last_index + 1, frame.index):
                log.write({"frame": index, "dropped": True})
            last_index = frame.index
            times = process(frame, runner, prep, overlay, outputs, topk, selections, reduction, num_patches, ema,
                            log, fast=not exact_resize)
            summary.processed += 1
            for stage, value in times.items():
                if stage in summary.ms:
                    summary.ms[stage].add(value)
                ema[stage] = value if stage not in ema else 0.9 * ema[stage] + 0.1 * value
            summary.loop_ms.add(times["preprocess"] + times["overlay"] + times["output"] + times["other"])
            now = time.perf_counter()
            if done is not None:  # the frame rate the loop achieves, for the status line
                ema["interval"] = 0.9 * ema.get("interval", now - done) + 0.1 * (now - done)
            done = now
            if progress is not None:
                progress.update(1)
    except OutputClosed as err:
        summary.reason = str(err)
    except OutputFull as err:
        summary.reason, summary.exit_code = str(err), 1
    finally:
        summary.seconds = time.perf_counter() - start
        grabber.stop()
        for output in outputs:
            output.close()
    if stop and stop.reason:
        summary.reason = stop.reason
    try:
        for index in range(last_index + 1, grabber.delivered):  # frames dropped after the last one processed
            log.write({"frame": index, "dropped": True})
    except OutputFull as err:
        summary.reason, summary.exit_code = str(err), 1
    summary.delivered, summary.dropped = grabber.delivered, grabber.dropped
    summary.notes.extend(grabber.source.notes)
    if grabber.source.unreadable:
        summary.notes.append(f"{grabber.source.unreadable} unreadable image(s) skipped")
    if grabber.source.reconnects:
        summary.notes.append(f"{grabber.source.name}: reconnected {grabber.source.reconnects} time(s)")
    summary.notes.extend(f"wrote {o.describe()}" for o in outputs if o.path and not o.path.startswith("display"))
    if summary.processed == 0 and summary.exit_code == 0 and not (stop and stop.reason):
        unreadable = grabber.source.unreadable
        summary.reason = ("no frame processed: " + (f"all {unreadable} image(s) were unreadable" if unreadable
                                                    else "the input gave no frame"))
        summary.exit_code = 2  # bad input, not success
    return summary


def status_line(ema: dict[str, float]) -> str | None:
    """``30.2 FPS | capture 33.1 ms, preprocess 0.9 ms, ...``: whole stage names (the overlay wraps, never cuts)."""
    if "interval" not in ema:
        return None
    return f"{1.0 / ema['interval']:.1f} FPS | " + ", ".join(f"{s} {ema.get(s, 0.0):.1f} ms" for s in STAGES)


def process(frame: Frame, runner: Runner, prep: dict, overlay: Overlay, outputs: Sequence[Output], topk: int,
            selections: Sequence[str], reduction: dict, num_patches: int, ema: dict[str, float],
            log: FrameLog, fast: bool = True) -> dict[str, float]:
    """One frame through preprocess, inference, overlay and the outputs; returns milliseconds per stage."""
    t0 = time.perf_counter()
    x = preprocess(frame.image, prep, "BGR", fast=fast)  # [1, 3, h, w]
    t1 = time.perf_counter()
    out = runner.infer({"input": x}, check_inputs=False)
    t2 = time.perf_counter()
    top = top_k(out["logits"][0], topk)
    maps = token_maps(out, reduction, num_patches) if selections else None
    status = status_line(ema)
    image = overlay.draw(frame.image, top, status, maps)
    t3 = time.perf_counter()
    for output in outputs:
        output.write(image)
    t4 = time.perf_counter()
    ms = {"capture": 1e3 * frame.capture_s, "preprocess": 1e3 * (t1 - t0),
          "inference": 1e3 * (runner.last_inference_time() or (t2 - t1)), "overlay": 1e3 * (t3 - t2),
          "output": 1e3 * (t4 - t3)}
    log.write({"frame": frame.index, "dropped": False, "size": [frame.image.shape[1], frame.image.shape[0]],
               "top": [{"class": c, "label": overlay.label(c), "prob": round(p, 6)} for c, p in top],
               "ms": {k: round(v, 3) for k, v in ms.items()}})
    ms["other"] = 1e3 * (time.perf_counter() - t4)
    ms["total"] = 1e3 * (time.perf_counter() - t0)
    return ms
