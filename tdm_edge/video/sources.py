"""Frame sources in jetson-inference's URI conventions, read with OpenCV.

=====================  ========================================================================================
``csi://0``            a Jetson MIPI CSI camera: the ``nvarguscamerasrc`` GStreamer pipeline (needs GStreamer)
``/dev/video0``        a V4L2 camera (also ``v4l2://0`` and ``v4l2:///dev/video0``)
``rtsp://host/path``   an RTSP stream (OpenCV's FFmpeg backend, or GStreamer)
``clip.mp4``           a video file (also ``file://clip.mp4``), any container OpenCV's FFmpeg reads
``photo.jpg``          one image; ``folder/`` every image in it, in natural (alphanumeric) order
``synthetic://``       a moving test pattern at ``--input-rate`` (``synthetic://?frames=N`` ends after N frames)
=====================  ========================================================================================

Live sources (cameras, streams, the test pattern) are re-opened with exponential backoff when a read fails; after
``retries`` failed attempts the source raises :class:`SourceLost`. Files end; ``--input-loop`` replays them.
"""

from __future__ import annotations

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
from .cvutil import GSTREAMER_HINT, build_has, cv2

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})
# jetson-inference's --input-flip names, in nvvidconv's flip-method order (0..7)
FLIPS = ("none", "counterclockwise", "rotate-180", "clockwise", "horizontal", "upper-right-diagonal", "vertical",
         "upper-left-diagonal")
SCHEMES = ("csi", "v4l2", "rtsp", "file", "synthetic")


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
    retries: int = 5  # live sources: reconnection attempts before giving up
    backoff: float = 0.5  # seconds before the first attempt, doubled each time (at most 8 s)


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # csi | v4l2 | rtsp | video | image | images | synthetic
    location: str  # sensor id, device, URL, path
    uri: str
    query: tuple[tuple[str, str], ...] = ()

    @property
    def live(self) -> bool:
        return self.kind in ("csi", "v4l2", "rtsp", "synthetic")


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
        if scheme == "synthetic":
            parts = urlsplit(uri)
            query = tuple((k, v[-1]) for k, v in parse_qs(parts.query).items())
            return SourceSpec("synthetic", parts.netloc, uri, query)
        if scheme != "file":
            raise UsageError(f"unknown input scheme {scheme}:// in {uri!r}; supported: csi://, v4l2://, rtsp://, "
                             "file:// (or a path), synthetic://")
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


def csi_pipeline(sensor: int, width: int = 1280, height: int = 720, rate: float = 30, flip: str = "none") -> str:
    """The GStreamer pipeline of a Jetson CSI camera (as jetson-utils' gstCamera builds it), ending in BGR frames."""
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width=(int){width}, "
            f"height=(int){height}, framerate=(fraction){_fraction(rate)}, format=(string)NV12 ! "
            f"nvvidconv flip-method={FLIPS.index(flip)} ! video/x-raw, format=(string)BGRx ! videoconvert ! "
            "video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")


def _fraction(rate: float) -> str:
    return f"{int(rate)}/1" if float(rate).is_integer() else f"{int(round(rate * 1000))}/1000"


def apply_flip(image: np.ndarray, flip: str) -> np.ndarray:
    """jetson-inference's ``--input-flip`` in software (CSI cameras flip in nvvidconv instead)."""
    if flip == "none":
        return image
    c = cv2()
    ops = {"counterclockwise": lambda i: c.rotate(i, c.ROTATE_90_COUNTERCLOCKWISE),
           "rotate-180": lambda i: c.rotate(i, c.ROTATE_180),
           "clockwise": lambda i: c.rotate(i, c.ROTATE_90_CLOCKWISE),
           "horizontal": lambda i: c.flip(i, 1), "vertical": lambda i: c.flip(i, 0),
           "upper-right-diagonal": lambda i: c.flip(c.transpose(i), -1),
           "upper-left-diagonal": lambda i: c.transpose(i)}
    return ops[flip](image)


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

    A failed read of a live source re-opens it: waits ``backoff``, ``2 backoff``, ... (at most 8 s) for up to
    ``retries`` attempts, then raises :class:`SourceLost`. A file ends at its last frame (or loops).
    """

    def __init__(self, name: str, opener: Callable[[], object], options: SourceOptions, live: bool,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, options)
        self.live = live
        self.opener = opener
        self.sleep = sleep
        self.passes = 0  # completed replays (--input-loop)
        self.pass_count = 0  # frames read in the current pass
        self.cap = opener()
        if not self.cap.isOpened():
            kind = "open" if live else "decode"
            raise UsageError(f"cannot {kind} {name}" + ("" if live else ": not a video OpenCV can read"))
        c = cv2()
        fps = float(self.cap.get(c.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else options.rate
        count = int(self.cap.get(c.CAP_PROP_FRAME_COUNT) or 0)
        self.expected = count if not live and count > 0 else None

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
        self.cap = self.opener()

    def _reconnect(self) -> np.ndarray:
        waited = 0.0
        for attempt in range(self.options.retries):
            delay = min(8.0, self.options.backoff * 2 ** attempt)
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
    """Open ``spec``: :class:`UsageError` (one line) when it cannot be opened or needs what this OpenCV lacks."""
    if options.flip not in FLIPS:
        raise UsageError(f"unknown --input-flip {options.flip!r}; choose one of {', '.join(FLIPS)}")
    c = cv2()
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
    if spec.kind == "video":
        return CaptureSource(spec.location, lambda: c.VideoCapture(spec.location, c.CAP_FFMPEG), options, live=False)
    if spec.kind == "csi":
        if not build_has("GStreamer"):
            raise UsageError(f"{spec.uri} needs OpenCV with GStreamer; {GSTREAMER_HINT}")
        pipeline = csi_pipeline(int(spec.location), options.width or 1280, options.height or 720,
                                options.rate or 30, options.flip)
        source = CaptureSource(spec.uri, lambda: c.VideoCapture(pipeline, c.CAP_GSTREAMER), options, live=True)
        source.flip_in_software = False  # nvvidconv flips
        return source
    if spec.kind == "rtsp":
        backend = c.CAP_FFMPEG if build_has("FFMPEG") else c.CAP_GSTREAMER if build_has("GStreamer") else None
        if backend is None:
            raise UsageError(f"{spec.uri} needs OpenCV with FFmpeg or GStreamer; {GSTREAMER_HINT}")
        return CaptureSource(spec.uri, lambda: c.VideoCapture(spec.location, backend), options, live=True)
    return CaptureSource(spec.location, lambda: _open_v4l2(spec.location, options), options, live=True)


def _open_v4l2(device: str, options: SourceOptions):
    c = cv2()
    cap = c.VideoCapture(device, c.CAP_V4L2)
    for prop, value in ((c.CAP_PROP_FRAME_WIDTH, options.width), (c.CAP_PROP_FRAME_HEIGHT, options.height),
                        (c.CAP_PROP_FPS, options.rate)):
        if value:
            cap.set(prop, value)
    return cap
