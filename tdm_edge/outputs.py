"""Output files, written safely: paths checked before any work, files written all together or not at all.

Light on purpose (no torch): the command line checks its output paths before it imports anything heavy. Every
stage that writes files (ONNX + sidecar, engines, reports) can use it:

- :func:`check_output_path`: the suffix, an existing path that is not a regular file (a directory, a device
  node, a pipe) is refused and never replaced, the directory exists and a file can be created in it;
- :func:`write_files`: every file goes to a temporary name beside its target first and is renamed into place only
  when all are written; if a rename fails, the files already renamed are put back as they were (the previous
  version, or no file), and no temporary file is left behind. Files get the permissions the umask gives
  (``0o666 & ~umask``, as ``open()`` would), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import UsageError


def sidecar_path(path: str | os.PathLike) -> Path:
    """``OUT.onnx`` -> ``OUT.json`` (``OUT`` -> ``OUT.json``)."""
    path = Path(path)
    side = path.with_suffix(".json")
    return side if side != path else path.with_name(path.name + ".json")


def check_output_path(path: str | os.PathLike, suffix: str | None = None, what: str = "output",
                      force: bool = False) -> Path:
    """Raise :class:`UsageError` (one line) unless a regular file can be written at ``path``.

    Args:
        path: the file to be written (it may exist: a regular file is replaced only once the new one is complete).
        suffix: the suffix the name must end in, e.g. ``".onnx"``.
        what: how the message names the file (``"output"``, ``"sidecar"``).
        force: replace an existing file that has no write permission bit (root could, but the user asked for it
            to stay: refused unless ``--force``).
    """
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise UsageError(f"{what} {path} must end in {suffix}")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory; give a file name such as {path / ('model' + (suffix or ''))}")
    if path.exists() and not path.is_file():
        raise UsageError(f"{what} {path} exists and is not a regular file (a device, pipe or socket); "
                         "refusing to replace it")
    if path.is_file() and not force and not path.stat().st_mode & 0o222:
        raise UsageError(f"{what} {path} is write-protected (mode {path.stat().st_mode & 0o777:o}); refusing to "
                         "replace it: remove it, make it writable or pass --force")
    parent = path.parent
    if not parent.is_dir():
        reason = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"cannot write {what} {path}: {parent} {reason}")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as err:
        raise UsageError(f"cannot write {what} {path}: {err.strerror or err}") from None
    return path


def writable_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """Create ``path`` (and its parents) if needed; raise :class:`UsageError` (one line) unless files can be made in
    it. ``what`` names it in the message (``"output folder"``)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {what} {path} ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"{what} {path} is not writable")
    return path


@contextlib.contextmanager
def removed_if_failed(path: str | os.PathLike):
    """Around work that creates the folder ``path``: when the work raises (or is interrupted), the folders it
    created, ``path`` and any parents that did not exist before, are removed again if they are still empty. A
    folder that existed before, or that holds a file, is never touched."""
    path = Path(path).absolute()
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)  # deepest first
    try:
        yield
    except BaseException:
        for folder in missing:
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                break
        raise


def umask_mode() -> int:
    """The mode a new file gets from ``open()`` under the current umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_beside(path: Path, data: bytes, mode: int) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _backup(path: Path) -> str | None:
    """A hard link to the current ``path`` (to restore it), or ``None`` when there is no regular file there."""
    if not path.is_file():
        return None
    backup = str(path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.old"))
    try:
        os.link(path, backup)  # never overwrites: the name is new
    except OSError:  # a file system without hard links
        shutil.copy2(path, backup)
    return backup


def write_file(path: str | os.PathLike, data: bytes) -> None:
    """One file, written atomically with the umask's permissions (:func:`write_files` of one)."""
    write_files({path: data})


def write_files(contents: dict[str | os.PathLike, bytes]) -> None:
    """Write every file of ``contents`` or none of them (see the module docstring); raises ``OSError`` on failure.

    Args:
        contents: ``{path: bytes}``; renamed into place in this order, so put the file that marks a complete
            output (the ``.onnx``) last.
    """
    mode = umask_mode()
    temps: dict[Path, str] = {}
    done: list[tuple[Path, str | None]] = []  # (target, backup of what it replaced)
    try:
        for path, data in contents.items():
            temps[Path(path)] = _temp_beside(Path(path), data, mode)
        for path, tmp in temps.items():
            backup = _backup(path)
            done.append((path, backup))
            os.replace(tmp, path)
    except BaseException:
        for path, backup in reversed(done):  # put back what was there before
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, path)
                elif not stat.S_ISDIR(os.lstat(path).st_mode):
                    os.unlink(path)
        raise
    finally:
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        for _, backup in done:
            if backup is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backup)
