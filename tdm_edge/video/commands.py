"""``tdm-edge run SOURCE [OUTPUT] --model M ...``: jetson-inference's ``imagenet.py`` for token-pruned ViTs.

This module only builds the parser; OpenCV, ONNX Runtime and torch are imported when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..args import MAX_COUNT, add_force_argument, in_range, positive_int
from ..limits import MAX_FRAME_SIDE, MAX_THREADS
from ..errors import UsageError
from .pipelines import CODECS, DECODERS, DEFAULT_LATENCY_MS, FLIPS, codec_name, flip_name  # no cv2, no numpy
from .v4l2 import format_name


def add_commands(sub, parser_class) -> None:
    from ..args import add_model_arguments

    p = sub.add_parser("run", help="classify a camera, stream, video or images live (jetson-inference's imagenet)",
                       description="Classify a camera stream, video file or images with a token-pruned ViT; draw "
                       "the top-k labels, FPS and per-stage times (and with --show-tokens the token map).")
    p.add_argument("input", help="csi://0, /dev/video0, v4l2://0, rtsp://..., a video, an image, a folder/, "
                   "synthetic://")
    p.add_argument("output", nargs="?", default=None,
                   help="display://0 (default with a display), out.mp4 (mp4v) / out.avi (MJPG), out.jpg, folder/")
    p.add_argument("--backend", default="auto", help="auto | trt | ort | torch | torch-cuda (default auto: by model)")
    p.add_argument("--topk", "--topK", type=positive_int, default=5, help="predictions shown (default 5)")
    p.add_argument("--headless", action="store_true", help="no window")
    p.add_argument("--input-width", type=in_range(int, 1, MAX_FRAME_SIDE, "--input-width"), default=None,
                   help="width asked of cameras (csi://, V4L2: 1280 by default, as jetson-utils) and synthetic://; "
                   "files and images are rescaled to it")
    p.add_argument("--input-height", type=in_range(int, 1, MAX_FRAME_SIDE, "--input-height"), default=None,
                   help="height asked of cameras (csi://, V4L2: 720 by default, as jetson-utils) and synthetic://; "
                   "files and images are rescaled to it")
    p.add_argument("--input-rate", type=in_range(float, 0.0, 1000.0, "--input-rate", above=True), default=None,
                   help="frames per second, > 0 and <= 1000 (cameras, synthetic://; default: the source's own)")
    p.add_argument("--input-flip", "--input-flip-method", "--flip-method", type=_parse(flip_name), default="none",
                   metavar="METHOD", help=f"{', '.join(FLIPS)} (jetson-utils' names; also horizontal, vertical). "
                   "csi:// swaps none and rotate-180 as jetson-utils does")
    p.add_argument("--input-loop", type=in_range(int, -1, MAX_COUNT, "--input-loop"), default=0,
                   help="files: -1 forever, 0 once (default), N more times")
    p.add_argument("--input-retries", type=in_range(int, 0, 1000, "--input-retries"), default=5,
                   help="live sources: attempts with backoff (0.5, 1, 2, 4, 8 s) after a failed open or read, from "
                   "the first open (default 5)")
    p.add_argument("--input-timeout", type=in_range(float, 0.0, 3600.0, "--input-timeout", above=True), default=10.0,
                   metavar="SECONDS",
                   help="every open of the input gives up after this long, retries included (default 10)")
    p.add_argument("--input-codec", type=_parse(codec_name), default=None, metavar="CODEC",
                   help=f"{', '.join(CODECS)}: the stream's codec for GStreamer pipelines (RTSP; files where OpenCV "
                   "has no FFmpeg); mjpeg on a V4L2 camera asks for MJPG (default: found by decodebin / FFmpeg)")
    p.add_argument("--input-decoder", choices=DECODERS, default="auto",
                   help="with --input-codec: cpu (libav) or v4l2 (nvv4l2decoder; auto: when installed)")
    p.add_argument("--input-latency", "--input-rtsp-latency", type=in_range(int, 0, 60_000, "--input-latency"),
                   default=DEFAULT_LATENCY_MS,
                   metavar="MS", help=f"RTSP jitter buffer in ms: rtspsrc latency=, or FFmpeg's max_delay "
                   f"(default {DEFAULT_LATENCY_MS}, as jetson-utils)")
    p.add_argument("--input-format", type=_parse(format_name), default=None, metavar="FOURCC",
                   help="V4L2 pixel format, e.g. mjpg or yuyv (default auto: the closest size at the best rate, MJPG "
                   "when it is faster)")
    p.add_argument("--output-codec", choices=("mp4v", "mjpg", "h264"), default=None,
                   help="video file codec (default: mp4v for .mp4, mjpg for .avi)")
    add_force_argument(p)
    p.add_argument("--show-tokens", action="store_true",
                   help="draw the token map: what happened to every patch in every reduction stage")
    p.add_argument("--log", default=None, help="write one JSON line per frame to this file")
    p.add_argument("--threads", type=in_range(int, 1, MAX_THREADS, "--threads"), default=None,
                   help="ONNX Runtime intra-op threads (default: ONNX Runtime's choice)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many processed frames")
    p.add_argument("--exact-resize", action="store_true",
                   help="resize the whole frame as calibration and eval do (slower; default: only the pixels under "
                   "the centre crop, about 0.8 ms instead of 6.5 ms at 1280x720)")
    group = p.add_argument_group("the model (--model picks the backend; the other options build a timm model)")
    add_model_arguments(group)
    from ..engine.cache import add_engine_arguments  # light: argparse only

    add_engine_arguments(p)  # --plugins, --engine-cache, --rebuild, --cuda (H4)
    p.set_defaults(func=_cmd_run, model=None)
    for action in p._actions:  # the shared --model option, described for this command
        if action.dest == "model":
            action.help = ("an .engine (TensorRT), an .onnx (ONNX Runtime) or a timm name (PyTorch; --checkpoint); "
                           "default: the checkpoint's own model, or the shipped demo model")


def _cmd_run(args: argparse.Namespace) -> int:
    from .backends import load_model
    from .capture import FrameGrabber
    from .cvutil import cv2, has_display
    from .loop import FrameLog, StopSignals, run_loop
    from .outputs import open_output, parse_output
    from .overlay import Overlay
    from .sources import SourceOptions, open_source, parse_source

    cv2().setNumThreads(1)  # OpenCV missing: one line, before anything else loads. One thread: the loop's resize
    # and drawing are small, and OpenCV's idle workers would take CPU from inference (measured at 1280x720: 2.3 ms
    # of CPU per frame for the loop with one thread, 3.4 ms with two; benchmarks/results/video_loop.md)
    spec = parse_source(args.input)
    out_specs = parse_output(args.output, args.headless, args.output_codec, force=args.force)
    if args.output is None and not args.headless and not has_display():
        print("tdm-edge run: no display found: running headless (give an output file to keep the frames)",
              file=sys.stderr)
    options = SourceOptions(args.input_width, args.input_height, args.input_rate, args.input_flip, args.input_loop,
                            args.input_retries, timeout=args.input_timeout, codec=args.input_codec,
                            latency=args.input_latency, pixel_format=args.input_format or "auto",
                            decoder=args.input_decoder)
    source = open_source(spec, options)
    outputs, log_file = [], None
    try:
        loaded = load_model(args)
        meta = loaded.meta
        patch = meta["model"]["patch_size"]
        _, height, width = meta["preprocessing"]["input_size"]
        overlay = Overlay(meta.get("labels"), meta["preprocessing"], (height // patch[0], width // patch[1]))
        log_file = _open_log(args.log)
        name = meta["model"].get("name") or Path(args.model).name
        outputs = [open_output(s, source.fps or 30.0, f"tdm-edge: {name}") for s in out_specs]
        from tqdm import tqdm

        with loaded.runner, StopSignals() as stop, tqdm(total=_total(source, options), unit="frame", leave=False,
                                                        disable=None, file=sys.stderr) as bar:
            grabber = FrameGrabber(source, keep_latest=source.live).start()
            summary = run_loop(grabber, loaded.runner, meta, overlay, outputs, args.topk, loaded.selections,
                               FrameLog(log_file), stop, args.max_frames, bar, args.exact_resize)
    finally:
        for output in outputs:
            output.close()
        source.close()
        if log_file is not None:
            with contextlib.suppress(OSError):  # a full disk was reported already; the lines before it are there
                log_file.close()
    print(f"tdm-edge run: {name} on {loaded.backend}, input {args.input}")
    for line in summary.lines():
        print(f"  {line}")
    if summary.exit_code:
        print(f"tdm-edge run: error: {summary.reason}", file=sys.stderr)
    return summary.exit_code


def _parse(check):
    """An argparse ``type`` from a checker that raises :class:`UsageError`: its own message on a bad value."""

    def parse(text: str):
        try:
            return check(text)
        except UsageError as err:
            raise argparse.ArgumentTypeError(str(err).split("; ", 1)[-1]) from None

    parse.__name__ = check.__name__
    return parse


def _total(source, options) -> int | None:
    if source.expected is None or options.loop != 0:
        return None
    return source.expected


def _open_log(path: str | None):
    if path is None:
        return None
    try:
        return open(path, "w", encoding="utf-8", buffering=1)
    except OSError as err:
        raise UsageError(f"cannot write --log {path}: {err.strerror or err}") from None
