"""Frame sources in jetson-inference's URI conventions, read with OpenCV.

=====================  ========================================================================================
``csi://0``            a Jetson MIPI CSI camera: jetson-utils' ``nvarguscamerasrc`` pipeline (needs GStreamer)
``/dev/video0``        a V4L2 camera (also ``v4l2://0`` and ``v4l2:///dev/video0``), in the mode jetson-utils picks
``rtsp://host/path``   an RTSP stream: GStreamer's ``rtspsrc`` (hardware decode on a Jetson), else FFmpeg
``http://host/path``   an HTTP(S) stream, e.g. an IP camera's MJPEG (FFmpeg)
``clip.mp4``           a video file (also ``file://clip.mp4``): FFmpeg, or GStreamer where OpenCV has no FFmpeg
``photo.jpg``          one image; ``folder/`` every image in it, in natural (alphanumeric) order
``synthetic://``       a moving test pattern at ``--input-rate`` (``synthetic://?frames=N`` ends after N frames)
=====================  ========================================================================================

Every open has a deadline (``--input-timeout``) and runs in a worker thread, so Ctrl-C ends it at once. Live sources
(cameras, streams) are tried again with exponential backoff from the first open, and re-opened when a read fails;
after ``retries`` failed attempts the first open is one error line, a lost source raises :class:`SourceLost`.
Files end; ``--input-loop`` replays them. docs/jetson_cameras.md compares every option with jetson-utils'.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import UsageError
from .deadline import OpenTimeout, open_within
from .cvutil import cv2
from .openers import plan_csi, plan_file, plan_http, plan_rtsp, plan_v4l2
from .pipelines import DEFAULT_LATENCY_MS, codec_name, flip_name, pick_decoder
from .v4l2 import format_name

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})
SCHEMES = ("csi", "v4l2", "rtsp", "http", "https", "file", "synthetic")
MAX_BACKOFF = 8.0  # seconds between two attempts, at most


class SourceLost(RuntimeError):
    """A live source failed and did not come back; the message is one line."""


@dataclass(frozen=True)
class SourceOptions:
    """jetson-inference's ``--input-*`` options; ``None`` keeps what the source gives."""

    width: int | None = None
    height: int | None = None
    rate: float | None = None
    flip: str = "none"
    loop: int = 0  # files: -1 forever, 0 once, N extra passes
    retries: int = 5  # live sources: attempts after a failed open or read before giving up
    backoff: float = 0.5  # seconds before the first attempt, doubled each time (at most 8 s)
    timeout: float = 10.0  # seconds an open may take, retries of the first open included
    codec: str | None = None  # --input-codec: h264 ... mjpeg (GStreamer pipelines; mjpeg for V4L2)
    latency: int = DEFAULT_LATENCY_MS  # --input-latency, ms (RTSP)
    pixel_format: str = "auto"  # --input-format: V4L2 pixel format (auto: jetson-utils' choice)
    decoder: str = "auto"  # --input-decoder: cpu | v4l2 (nvv4l2decoder) | auto


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # csi | v4l2 | rtsp | video | image | images | synthetic
    location: str  # sensor id, device, URL, path
    uri: str
    query: tuple[tuple[str, str], ...] = ()

    @property
    def live(self) -> bool:
        return self.kind in ("csi", "v4l2", "rtsp", "http", "synthetic")


def parse_source(uri: str) -> SourceSpec:
    """A source URI or path -> :class:`SourceSpec`; :class:`UsageError` for unknown schemes and missing files."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", uri)
    if match:
        scheme, rest = match.group(1).lower(), match.group(2)
        if scheme == "csi":
            if not rest.isdigit():
                raise UsageError(f"expected csi://N (a sensor number), got {uri!r}")
            return SourceSpec("csi", rest, uri)
        if scheme == "v4l2":
            device = rest if rest.startswith("/") else f"/dev/video{rest}"
            if not re.fullmatch(r"(/dev/video\d+|/dev/\S+)", device):
                raise UsageError(f"expected v4l2://N or v4l2:///dev/videoN, got {uri!r}")
            return SourceSpec("v4l2", device, uri)
        if scheme in ("rtsp", "rtsps"):
            return SourceSpec("rtsp", uri, uri)
        if scheme in ("http", "https"):
            return SourceSpec("http", uri, uri)
        if scheme == "synthetic":
            parts = urlsplit(uri)
            query = tuple((k, v[-1]) for k, v in parse_qs(parts.query).items())
            return SourceSpec("synthetic", parts.netloc, uri, query)
        if scheme != "file":
            raise UsageError(f"unknown input scheme {scheme}:// in {uri!r}; supported: csi://, v4l2://, rtsp://, "
                             "http(s)://, file:// (or a path), synthetic://")
        uri_path = rest
    else:
        uri_path = uri
    if re.fullmatch(r"/dev/video\d+", uri_path):
        return SourceSpec("v4l2", uri_path, uri)
    path = Path(uri_path)
    if path.is_dir():
        return SourceSpec("images", os.fspath(path), uri)
    if not path.is_file():
        raise UsageError(f"input not found: {uri_path}")
    return SourceSpec("image" if path.suffix.lower() in IMAGE_EXTS else "video", os.fspath(path), uri)


def apply_flip(image: np.ndarray, flip: str) -> np.ndarray:
    """jetson-inference's ``--input-flip`` in software (CSI cameras flip in nvvidconv instead)."""
    if flip == "none":
        return image
    c = cv2()
    ops = {"counterclockwise": lambda i: c.rotate(i, c.ROTATE_90_COUNTERCLOCKWISE),
           "rotate-180": lambda i: c.rotate(i, c.ROTATE_180),
           "clockwise": lambda i: c.rotate(i, c.ROTATE_90_CLOCKWISE),
           "horizontal-flip": lambda i: c.flip(i, 1), "vertical-flip": lambda i: c.flip(i, 0),
           "upper-right-diagonal": lambda i: c.flip(c.transpose(i), -1),
           "upper-left-diagonal": lambda i: c.transpose(i)}
    return ops[flip_name(flip)](image)


class FrameSource:
    """``read() -> image | None`` (``None``: the end), ``close()``; counts what it read and what it could not."""

    live = False
    flip_in_software = True  # False where the capture pipeline flips (CSI: nvvidconv)
    fps: float | None = None
    expected: int | None = None  # frames a file announces (one pass), when known

    def __init__(self, name: str, options: SourceOptions) -> None:
        self.name = name
        self.options = options
        self.read_count = 0
        self.unreadable = 0  # images in a folder that could not be decoded (skipped)
        self.reconnects = 0
        self.notes: list[str] = []

    def read(self) -> np.ndarray | None:
        image = self.read_impl()
        if image is None:
            return None
        self.read_count += 1
        return self.finish(image)

    def finish(self, image: np.ndarray) -> np.ndarray:
        """Resize to ``--input-width/height`` (files and folders) and apply ``--input-flip``."""
        opts = self.options
        if not self.live and (opts.width or opts.height):
            h, w = image.shape[:2]
            size = (opts.width or round(w * opts.height / h), opts.height or round(h * opts.width / w))
            if size != (w, h):
                image = cv2().resize(image, size, interpolation=cv2().INTER_AREA)
        return apply_flip(image, opts.flip) if opts.flip != "none" and self.flip_in_software else image

    def read_impl(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (idempotent)."""


class CaptureSource(FrameSource):
    """A ``cv2.VideoCapture`` (or anything with ``isOpened/read/release``) made by ``opener``.

    Every open runs under :func:`~tdm_edge.video.deadline.open_within` with ``options.timeout``. The first open of
    a live source is tried again after ``backoff``, ``2 backoff``, ... (at most 8 s) for up to ``retries`` more
    attempts while the deadline lasts; then one :class:`UsageError` line ending in ``hint``. A failed read of a
    live source re-opens it the same way, then raises :class:`SourceLost`. A file is opened once and ends at its
    last frame (or loops).
    """

    def __init__(self, name: str, opener: Callable[[], object], options: SourceOptions, live: bool,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 hint: str = "") -> None:
        super().__init__(name, options)
        self.live = live
        self.opener = opener
        self.sleep = sleep
        self.clock = clock
        self.passes = 0  # completed replays (--input-loop)
        self.pass_count = 0  # frames read in the current pass
        self.cap = self._open_first(hint)
        c = cv2()
        fps = float(self.cap.get(c.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else options.rate
        count = int(self.cap.get(c.CAP_PROP_FRAME_COUNT) or 0)
        self.expected = count if not live and count > 0 else None

    def _open_first(self, hint: str):
        opts = self.options
        start = self.clock()
        deadline = start + opts.timeout
        for attempt in range(opts.retries + 1 if self.live else 1):
            try:
                cap = open_within(self.opener, max(0.0, deadline - self.clock()))
            except OpenTimeout:
                raise UsageError(f"{self.name} did not open within {opts.timeout:g} s (--input-timeout){hint}") \
                    from None
            if cap.isOpened():
                return cap
            cap.release()
            if not self.live:
                raise UsageError(f"cannot decode {self.name}: not a video OpenCV can read{hint}")
            delay = min(MAX_BACKOFF, opts.backoff * 2 ** attempt)
            if attempt == opts.retries or self.clock() + delay >= deadline:
                break
            self.sleep(delay)
        tries = f"{attempt + 1} attempts in {self.clock() - start:.1f} s" if attempt else "1 attempt"
        raise UsageError(f"cannot open {self.name} ({tries}){hint}")

    def read_impl(self) -> np.ndarray | None:
        ok, image = self.cap.read()
        if ok and image is not None:
            self.pass_count += 1
            return image
        if not self.live:
            if self.expected and self.pass_count < self.expected and self.passes == 0:
                self.notes.append(f"{self.name} ended after {self.pass_count} of the {self.expected} frames its "
                                  "header announces (truncated or damaged file)")
            loops = self.options.loop
            if loops < 0 or self.passes < loops:
                self.passes += 1
                self._reopen()
                ok, image = self.cap.read()
                self.pass_count = 1 if ok else 0
                return image if ok else None
            return None
        return self._reconnect()

    def _reopen(self) -> None:
        self.cap.release()
        try:
            self.cap = open_within(self.opener, self.options.timeout)
        except OpenTimeout:
            self.cap = _NoCapture()

    def _reconnect(self) -> np.ndarray:
        waited = 0.0
        for attempt in range(self.options.retries):
            delay = min(MAX_BACKOFF, self.options.backoff * 2 ** attempt)
            self.sleep(delay)
            waited += delay
            self._reopen()
            if self.cap.isOpened():
                ok, image = self.cap.read()
                if ok and image is not None:
                    self.reconnects += 1
                    return image
        raise SourceLost(f"{self.name} lost: no frame after {self.options.retries} reconnection attempts "
                         f"over {waited:.1f} s")

    def close(self) -> None:
        self.cap.release()


class _NoCapture:
    """What a re-open that timed out leaves behind: closed, reads nothing."""

    def isOpened(self) -> bool:
        return False

    def read(self):
        return False, None

    def release(self) -> None:
        pass


class ImageFolderSource(FrameSource):
    """The images of a folder in natural order (``img2`` before ``img10``), or one image; unreadable ones skipped."""

    def __init__(self, name: str, paths: list[Path], options: SourceOptions) -> None:
        super().__init__(name, options)
        self.paths = paths
        self.expected = len(paths)
        self.fps = options.rate
        self.position = 0
        self.passes = 0

    def read_impl(self) -> np.ndarray | None:
        while True:
            if self.position == len(self.paths):
                if not (self.options.loop < 0 or self.passes < self.options.loop):
                    return None
                self.passes += 1
                self.position = 0
            path = self.paths[self.position]
            self.position += 1
            image = cv2().imread(os.fspath(path), cv2().IMREAD_UNCHANGED)
            if image is not None:
                return image
            self.unreadable += 1
            if self.unreadable == 1:
                self.notes.append(f"skipped unreadable image(s), first {path.name}")


class SyntheticSource(FrameSource):
    """A moving test pattern (colour ramps, bars and a disc circling), paced at ``rate`` like a camera."""

    live = True

    def __init__(self, name: str, options: SourceOptions, frames: int | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(name, options)
        self.width, self.height = options.width or 1280, options.height or 720
        self.fps = options.rate or 30.0
        self.frames = frames
        self.clock = clock
        yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        bars = (xx * 8 // self.width) % 2 * 60.0
        self.background = np.stack([255 * xx / self.width, 255 * yy / self.height,
                                    200 - 0.6 * bars - 80 * xx / self.width], -1).clip(0, 255).astype(np.uint8)
        self.start: float | None = None
        self.produced = 0

    def read_impl(self) -> np.ndarray | None:
        if self.frames is not None and self.produced >= self.frames:
            return None
        now = self.clock()
        if self.start is None:
            self.start = now
        due = self.start + self.produced / self.fps
        if due > now:
            time.sleep(due - now)
        t = 0.08 * self.produced  # the pattern moves per frame, whatever the rate
        image = self.background.copy()
        r = min(self.width, self.height) // 6
        cx = int(self.width / 2 + self.width / 3 * math.cos(t))
        cy = int(self.height / 2 + self.height / 4 * math.sin(1.3 * t))
        cv2().circle(image, (cx, cy), r, (40, 220, 255), -1, cv2().LINE_AA)
        self.produced += 1
        return image


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def open_source(spec: SourceSpec, options: SourceOptions) -> FrameSource:
    """Open ``spec``: :class:`UsageError` (one line) when it cannot be opened, does not open within
    ``options.timeout`` s, or needs what this OpenCV lacks."""
    options = checked_options(options)
    if spec.kind == "synthetic":
        query = dict(spec.query)
        try:
            frames = int(query["frames"]) if "frames" in query else None
        except ValueError:
            raise UsageError(f"synthetic://?frames=N needs an integer, got {query['frames']!r}") from None
        return SyntheticSource(spec.uri, options, frames)
    if spec.kind in ("image", "images"):
        path = Path(spec.location)
        paths = [path] if spec.kind == "image" else sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()), key=_natural_key)
        if not paths:
            raise UsageError(f"no images in {spec.location} (looked for {', '.join(sorted(IMAGE_EXTS))})")
        return ImageFolderSource(spec.location, paths, options)
    if spec.kind == "csi":
        name, plan = spec.uri, plan_csi(spec.uri, int(spec.location), options)
    elif spec.kind == "rtsp":
        name, plan = spec.uri, plan_rtsp(spec.location, options)
    elif spec.kind == "http":
        name, plan = spec.uri, plan_http(spec.location, options)
    elif spec.kind == "video":
        name, plan = spec.location, plan_file(spec.location, options)
    else:
        name, plan = spec.location, plan_v4l2(spec.location, options)
    source = CaptureSource(name, plan.opener, options, live=spec.live, hint=plan.hint)
    source.flip_in_software = plan.flip_in_software
    source.notes.extend(plan.notes)
    return source


def checked_options(options: SourceOptions) -> SourceOptions:
    """``options`` with jetson-utils' spellings made ours (``horizontal`` -> ``horizontal-flip``, ``H264`` ->
    ``h264``); one :class:`UsageError` line for a value that is not one of them or out of range."""
    if not options.timeout > 0:
        raise UsageError(f"--input-timeout must be > 0 seconds, got {options.timeout:g}")
    if options.retries < 0 or options.latency < 0:
        raise UsageError("--input-retries and --input-latency must be >= 0")
    format_name(options.pixel_format)
    pick_decoder("h264", options.decoder, False)  # checks the name
    return dataclasses.replace(options, flip=flip_name(options.flip),
                               codec=codec_name(options.codec) if options.codec else None)
