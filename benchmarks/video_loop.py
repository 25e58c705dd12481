"""The camera loop's own cost and its end-to-end frame rate (``tdm-edge run``), recorded, not a timed test.

1. Loop overhead without inference, 1280x720 frames: the real :func:`tdm_edge.video.loop.run_loop` with a runner
   that returns fixed outputs (so inference costs ~0) on pre-decoded frames (so capture costs ~0): what remains is
   preprocessing, top-k, overlay, bookkeeping; headless. Measured with and without the token map, and the cost of
   writing the frames to a video file (mp4v, MJPG) beside it.
2. End to end: DeiT-T BAT keep 0.7 (and unpruned DeiT-T for scale), trained-like weights, ONNX Runtime with
   1 and 2 intra-op threads, a 1280x720 mp4v file decoded by the capture thread, headless; FPS and the share of each
   stage. Also BAT 0.7 in ONNX Runtime's dynamic INT8 (``tdm-edge calibrate --target cpu``). The models alternate,
   ``--rounds`` times.

    python benchmarks/video_loop.py [--frames 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tdm_edge.bench.models import trained_like
from tdm_edge.bench.run import cpu_name
from tdm_edge.export.onnx_export import export_onnx, read_metadata
from tdm_edge.quantize import quantize_for_cpu
from tdm_edge.reduce.models import create_model
from tdm_edge.runners.base import Runner, TensorMeta
from tdm_edge.runners.onnxrt import OnnxRuntimeRunner
from tdm_edge.video.capture import FrameGrabber
from tdm_edge.video.loop import STAGES, run_loop
from tdm_edge.video.outputs import VideoFileOutput
from tdm_edge.video.overlay import Overlay
from tdm_edge.video.sources import FrameSource, SourceOptions, SyntheticSource, open_source, parse_source

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = (1280, 720)


class FixedRunner(Runner):
    """Returns the same outputs every time (recorded once from the real model): inference at ~zero cost."""

    def __init__(self, outputs: dict[str, np.ndarray], shape) -> None:
        super().__init__("fixed")
        self.outputs, self.shape = outputs, shape

    def activate_impl(self) -> None: ...

    def deactivate_impl(self) -> None: ...

    def input_metadata_impl(self):
        return [TensorMeta("input", np.dtype(np.float32), tuple(self.shape))]

    def infer_impl(self, feed):
        return self.outputs


class MemorySource(FrameSource):
    """Cycles through pre-rendered frames: capture at ~zero cost."""

    def __init__(self, images: list[np.ndarray], count: int) -> None:
        super().__init__("memory", SourceOptions())
        self.images, self.count = images, count

    def read_impl(self):
        return self.images[self.read_count % len(self.images)] if self.read_count < self.count else None


def synthetic_frames(count: int) -> list[np.ndarray]:
    source = SyntheticSource("synthetic://", SourceOptions(width=SIZE[0], height=SIZE[1], rate=1e6))
    return [source.read() for _ in range(count)]


def export(name: str, method: str, folder: Path) -> Path:
    path = folder / f"{name}_{method}.onnx"
    model = trained_like(create_model(name, method=method, keep_rate=0.7))
    export_onnx(model, path, name=name, verify=False, selection_outputs=method != "none")
    return path


def loop_once(source: FrameSource, runner: Runner, meta: dict, selections, outputs=(), keep_latest=False,
              exact_resize=False):
    grid = (meta["preprocessing"]["input_size"][1] // meta["model"]["patch_size"][0],) * 2
    overlay = Overlay(meta["labels"], meta["preprocessing"], grid)
    grabber = FrameGrabber(source, keep_latest=keep_latest).start()
    return run_loop(grabber, runner, meta, overlay, list(outputs), 5, selections, exact_resize=exact_resize)


def overhead(meta: dict, outputs: dict[str, np.ndarray], selections: list[str], frames: int, folder: Path) -> dict:
    images = synthetic_frames(8)
    runner = FixedRunner(outputs, (1, *meta["preprocessing"]["input_size"]))
    runner.activate()
    result = {}
    for label, sel, exact in (("labels", [], False), ("labels, --exact-resize", [], True),
                              ("labels + token map", selections, False)):
        loop_once(MemorySource(images, 10), runner, meta, sel, exact_resize=exact)  # warm-up
        cpu = time.process_time()
        s = loop_once(MemorySource(images, frames), runner, meta, sel, exact_resize=exact)
        cpu_ms = 1e3 * (time.process_time() - cpu) / s.processed  # all threads (OpenCV's included)
        result[label] = {"loop_ms": s.median_ms("loop"), "cpu_ms_per_frame": cpu_ms,
                         **{k: s.median_ms(k) for k in ("preprocess", "overlay")},
                         "loop_ms_p90": s.quantile_ms("loop", 0.9)}
    for codec, ext in (("mp4v", ".mp4"), ("mjpg", ".avi")):
        out = VideoFileOutput(os.fspath(folder / f"o{ext}"), codec, 30.0)
        times = []
        for i in range(frames):
            start = time.perf_counter()
            out.write(images[i % len(images)])
            times.append(1e3 * (time.perf_counter() - start))
        out.close()
        result[f"write {codec}"] = {"output_ms": statistics.median(times)}
    return result


def end_to_end(paths: dict[str, Path], video: Path, rounds: int, threads: tuple[int, ...] = (1, 2)) -> dict:
    """FPS, per-stage medians and process CPU time per frame; configurations alternate within each round."""
    configs = [(k, t) for k in paths for t in threads]
    runners = {(k, t): OnnxRuntimeRunner(paths[k], intra_op_threads=t) for k, t in configs}
    metas = {k: read_metadata(p) for k, p in paths.items()}
    runs: dict[str, list[dict]] = {f"{k} ort{t}": [] for k, t in configs}
    for r in runners.values():
        r.activate()
    try:
        for k, t in configs:  # warm-up
            loop_once(open_source(parse_source(os.fspath(video)), SourceOptions()), runners[k, t], metas[k], [])
        for _ in range(rounds):
            for k, t in configs:
                cpu = time.process_time()
                s = loop_once(open_source(parse_source(os.fspath(video)), SourceOptions()), runners[k, t], metas[k],
                              [])
                cpu_ms = 1e3 * (time.process_time() - cpu) / s.processed
                total = sum(s.median_ms(st) for st in STAGES if st != "capture")
                runs[f"{k} ort{t}"].append({
                    "fps": s.fps, "processed": s.processed, "cpu_ms_per_frame": cpu_ms,
                    **{st: s.median_ms(st) for st in STAGES},
                    "share": {st: s.median_ms(st) / total for st in STAGES if st != "capture"}})
    finally:
        for r in runners.values():
            r.deactivate()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--note", default="", help="what else ran on the machine, for the record")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)  # as tdm-edge run does
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = {"bat": export("deit_tiny_patch16_224", "bat", folder),
                 "unpruned": export("deit_tiny_patch16_224", "none", folder)}
        paths["bat int8"] = folder / "bat_int8.onnx"
        quantize_for_cpu(paths["bat"], paths["bat int8"])  # ONNX Runtime's dynamic INT8, as tdm-edge calibrate
        meta = read_metadata(paths["bat"])
        from tdm_edge.export.selections import output_selections
        import onnx

        selections = output_selections(onnx.load(os.fspath(paths["bat"])))
        with OnnxRuntimeRunner(paths["bat"], intra_op_threads=2) as r:
            from tdm_edge.runners.preprocess import preprocess

            outputs = r.infer({"input": preprocess(synthetic_frames(1)[0], meta["preprocessing"])})
        over = overhead(meta, outputs, selections, args.frames, folder)
        video = folder / "in.mp4"
        out = VideoFileOutput(os.fspath(video), "mp4v", 30.0)
        for img in synthetic_frames(args.frames):
            out.write(img)
        out.close()
        e2e = end_to_end(paths, video, args.rounds)
    record = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                          "load_before": load_before, "load_after": os.getloadavg(),
                          "note": args.note},
              "settings": {"frame": list(SIZE), "frames": args.frames, "rounds": args.rounds, "ort_threads": [1, 2],
                           "model": "deit_tiny_patch16_224", "keep_rate": 0.7, "weights": "trained-like (random + "
                           "N(0, 0.02^2))", "headless": True},
              "overhead": over, "end_to_end": e2e}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "video_loop.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
