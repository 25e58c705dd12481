"""Run a command as an unprivileged user, so permission checks really refuse even when the suite runs as root (CI).

Root writes into a mode-0555 folder and over a mode-0444 file (CAP_DAC_OVERRIDE), so a test of "a write-protected
folder is refused" proves nothing as root unless the command runs without that power. :func:`prefix` gives the
command prefix that does it: nothing when the tests already run unprivileged, else ``setpriv`` (util-linux) or
``runuser`` to user ``nobody`` (uid/gid 65534), else ``capsh`` dropping every capability while staying uid 0.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

NOBODY = 65534


def prefix() -> list[str] | None:
    """The argv prefix that runs a command without root's file-access override; ``None`` when none is available."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    if shutil.which("capsh"):  # still uid 0, but without CAP_DAC_OVERRIDE: a root-owned 0555 folder refuses
        return ["capsh", "--drop=all", "--"]  # capsh then runs its argument through /bin/bash: see wrap()
    return None


def wrap(argv: list[str]) -> list[str] | None:
    """``argv`` run through :func:`prefix`; ``None`` when no way to drop the privileges exists here."""
    head = prefix()
    if head is None:
        return None
    if head[:1] == ["capsh"]:
        import shlex

        return [*head, "-c", shlex.join(argv)]
    return [*head, *argv]


def shared_folder() -> Path:
    """A new folder under the system temp dir that the unprivileged user can enter and read (pytest's own tmp_path
    sits under a mode-0700 folder of root's). The caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="tdm-unprivileged-"))
    folder.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)  # 0755
    return folder
