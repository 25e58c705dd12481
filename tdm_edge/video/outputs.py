"""Where annotated frames go, in jetson-inference's conventions: ``display://0`` (a window), a video file, an image
file or folder, or nothing (``--headless``).

Files are written under a temporary name in the target folder and renamed when finalised (a video at the end, an
image per frame), with the permissions the umask gives. Before every frame the free space of the target's file
system is checked: below a reserve (room for the container's trailer) the output stops with :class:`OutputFull`
while the file can still be finalised, so a full disk leaves a readable file with the frames so far. OpenCV's video
writer reports no write errors itself, so this check is the only way to see a full disk coming.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..outputs import check_output_path
from ..outputs import umask_mode, write_file
from .cvutil import cv2, has_display
from .sources import IMAGE_EXTS

VIDEO_EXTS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv"})
CODECS = {"mp4v": "mp4v", "mjpg": "MJPG", "h264": "avc1"}
RESERVE_BYTES = 1 << 20  # kept free below every write, on top of a few frames' worth


class OutputFull(RuntimeError):
    """The disk is (nearly) full; the output was finalised with the frames so far. One line."""


class OutputClosed(RuntimeError):
    """The user closed the window (or pressed q / Esc)."""


def free_bytes(folder: str | os.PathLike) -> int:
    """Bytes available to this user on the file system holding ``folder``."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


class Output:
    """``write(image)`` each frame, ``close()`` once (finalises); ``frames`` counts what was written."""

    path: str | None = None

    def __init__(self) -> None:
        self.frames = 0
        self.largest = 0  # bytes of the largest frame written, for the free-space reserve

    def write(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finalise (idempotent)."""

    def describe(self) -> str:
        return f"{self.path} ({self.frames} frames)"

    def _check_space(self, folder: str, upcoming: int) -> None:
        free = free_bytes(folder)
        if free < RESERVE_BYTES + 4 * max(self.largest, upcoming):
            raise OutputFull(f"disk nearly full ({free / 1e6:.1f} MB free in {folder}): stopped writing after "
                             f"{self.frames} frames; {self.path} is finalised with those")


class VideoFileOutput(Output):
    """A video file; opened at the first frame (its size fixes the video's), later sizes are resized to it."""

    def __init__(self, path: str, codec: str, fps: float) -> None:
        super().__init__()
        self.path = path
        self.codec = codec
        self.fps = fps
        self.size: tuple[int, int] | None = None
        self.resized = 0
        target = Path(path)
        self.folder = os.fspath(target.parent)
        fd, self.tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{target.stem}.", suffix=target.suffix)
        os.close(fd)  # OpenCV writes the file by name
        self.writer = None
        self.closed = False

    def write(self, image: np.ndarray) -> None:
        c = cv2()
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            self.writer = c.VideoWriter(self.tmp, c.VideoWriter_fourcc(*CODECS[self.codec]), self.fps, self.size)
            if not self.writer.isOpened():
                raise UsageError(f"OpenCV cannot write {self.codec} video to {self.path}")
        if (image.shape[1], image.shape[0]) != self.size:
            image = c.resize(image, self.size, interpolation=c.INTER_AREA)
            self.resized += 1
        self._check_space(self.folder, image.nbytes // 10)
        size_before = os.path.getsize(self.tmp)
        self.writer.write(image)
        self.frames += 1
        self.largest = max(self.largest, os.path.getsize(self.tmp) - size_before)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.writer is not None:
            self.writer.release()
        if self.frames == 0:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            return
        os.chmod(self.tmp, umask_mode())
        os.replace(self.tmp, self.path)

    def describe(self) -> str:
        w, h = self.size or (0, 0)
        note = f", {self.resized} resized to the first frame's size" if self.resized else ""
        return f"{self.path} ({self.frames} frames, {w}x{h}, {self.codec}{note})"


class ImageOutput(Output):
    """Images: into a folder (``frame_000000.jpg`` ...), by a ``%i`` pattern, or one file rewritten every frame."""

    def __init__(self, target: str, folder_mode: bool) -> None:
        super().__init__()
        self.path = target
        self.folder_mode = folder_mode
        if folder_mode:
            os.makedirs(target, exist_ok=True)
        self.folder = target if folder_mode else os.fspath(Path(target).parent)

    def _name(self) -> str:
        if self.folder_mode:
            return os.path.join(self.path, f"frame_{self.frames:06d}.jpg")
        if "%" in self.path:
            return re.sub(r"%(\d*)i", lambda m: f"%{m.group(1)}d", self.path) % self.frames
        return self.path

    def write(self, image: np.ndarray) -> None:
        self._check_space(self.folder, image.nbytes // 4)
        name = self._name()
        ext = Path(name).suffix
        ok, data = cv2().imencode(ext, image)
        if not ok:
            raise UsageError(f"OpenCV cannot encode {ext} images")
        _atomic_write(name, data.tobytes())
        self.frames += 1
        self.largest = max(self.largest, data.nbytes)


def _atomic_write(path: str, data: bytes) -> None:
    try:
        write_file(path, data)
    except OSError as err:
        if err.errno == 28:  # ENOSPC
            raise OutputFull(f"disk full writing {path}: {path} is not written; earlier frames are") from None
        raise


class DisplayOutput(Output):
    """An OpenCV window; ``q``, Esc or closing the window ends the run (:class:`OutputClosed`)."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.path = "display://0"
        self.title = title
        cv2().namedWindow(title, cv2().WINDOW_NORMAL)

    def write(self, image: np.ndarray) -> None:
        c = cv2()
        if self.frames and c.getWindowProperty(self.title, c.WND_PROP_VISIBLE) < 1:
            raise OutputClosed("window closed")
        c.imshow(self.title, image)
        self.frames += 1
        if c.waitKey(1) & 0xFF in (ord("q"), 27):
            raise OutputClosed("q pressed")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the window may already be gone; nothing to finalise
            cv2().destroyWindow(self.title)


@dataclass(frozen=True)
class OutputSpec:
    kind: str  # display | video | image | images
    target: str
    codec: str | None = None


def parse_output(uri: str | None, headless: bool, codec: str | None = None, force: bool = False) -> list[OutputSpec]:
    """The output URI (and ``--headless``) -> what to write; a window comes too when a display exists. A file
    output is checked as every command checks its outputs (:func:`tdm_edge.outputs.check_output_path`: never a
    device node, a directory or, without ``force``, a write-protected file)."""
    specs: list[OutputSpec] = []
    if uri:
        match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", uri)
        scheme, rest = (match.group(1).lower(), match.group(2)) if match else ("file", uri)
        if scheme == "display":
            if headless:
                raise UsageError("display:// and --headless contradict each other; choose one")
            specs.append(OutputSpec("display", rest or "0"))
        elif scheme != "file":
            raise UsageError(f"unknown output scheme {scheme}:// in {uri!r}; supported: display://, file:// "
                             "(or a path: .mp4/.avi/.mkv video, .jpg/.png image, a folder/)")
        else:
            specs.append(_file_spec(rest, codec, force))
    if not headless and not any(s.kind == "display" for s in specs) and has_display():
        specs.append(OutputSpec("display", "0"))
    if any(s.kind == "display" for s in specs) and not has_display():
        raise UsageError("display://0 needs a display (DISPLAY/WAYLAND_DISPLAY is not set); use --headless or an "
                         "output file")
    return specs


def _file_spec(path: str, codec: str | None, force: bool = False) -> OutputSpec:
    ext = Path(path).suffix.lower()
    if path.endswith(("/", os.sep)) or Path(path).is_dir() or not ext:
        kind = "images"
    elif ext in IMAGE_EXTS:
        kind = "image"
    elif ext in VIDEO_EXTS:
        kind = "video"
        codec = codec or ("mjpg" if ext == ".avi" else "mp4v")
    else:
        raise UsageError(f"cannot tell what to write for {path!r}: use a video (.mp4, .avi, .mkv), an image "
                         "(.jpg, .png) or a folder/")
    parent = Path(path.rstrip("/")).parent if kind == "images" else Path(path).parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {path}: directory {parent} is not writable")
    if kind in ("video", "image"):
        check_output_path(path, force=force)
    elif Path(path.rstrip("/")).exists() and not Path(path.rstrip("/")).is_dir():
        raise UsageError(f"output {path} exists and is not a folder (a file, device, pipe or socket); "
                         "refusing to write images into it")
    if codec == "h264" and kind == "video" and not h264_available(Path(parent)):
        raise UsageError("H.264 is not available in this OpenCV build (no working encoder); use --output-codec mp4v "
                         "(.mp4) or mjpg (.avi), or JetPack's OpenCV with GStreamer")
    if codec is not None and kind != "video":
        raise UsageError(f"--output-codec applies to video files, not {path!r}")
    return OutputSpec(kind, path, codec)


def h264_available(folder: Path) -> bool:
    """Whether OpenCV can open an H.264 (avc1) writer here: tried on a tiny temporary file."""
    c = cv2()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".h264-probe.", suffix=".mp4")
    os.close(fd)
    try:
        writer = c.VideoWriter(tmp, c.VideoWriter_fourcc(*"avc1"), 10.0, (64, 64))
        ok = writer.isOpened()
        writer.release()
        return ok
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def open_output(spec: OutputSpec, fps: float, title: str = "tdm-edge") -> Output:
    if spec.kind == "display":
        return DisplayOutput(title)
    if spec.kind == "video":
        return VideoFileOutput(spec.target, spec.codec or "mp4v", fps)
    return ImageOutput(spec.target.rstrip("/") if spec.kind == "images" else spec.target, spec.kind == "images")
