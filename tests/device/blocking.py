"""Run a Python process in which the workstation packages cannot be imported, as on a device-only install.

:func:`blocked_env` writes a ``sitecustomize.py`` (imported by every Python that starts with it on PYTHONPATH,
child processes included: bench measures in spawned ones) whose ``sys.meta_path`` finder raises
``ModuleNotFoundError`` for ``tdm_edge.sides.FORBIDDEN``, and which at exit fails with code 99 and one line if any
of them is in ``sys.modules`` anyway.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

from tdm_edge.sides import FORBIDDEN

ROOT = Path(__file__).resolve().parents[2]
HELD = "FORBIDDEN MODULES HELD"

SITECUSTOMIZE = '''
import atexit, os, sys

FORBIDDEN = {forbidden!r}


class DeviceSideBlocker:
    """Stand-in for an install without torch & co.: importing them fails as if they were absent."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ModuleNotFoundError("No module named %r (blocked: device-side test)" % name, name=name)
        return None


sys.meta_path.insert(0, DeviceSideBlocker())


@atexit.register
def _check_held():
    held = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    if held:
        os.write(2, ("{held}: %s\\n" % held).encode())
        os._exit(99)
'''


def blocked_env(folder: Path) -> dict:
    """The environment for a blocked process (writes ``folder/sitecustomize.py``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(forbidden=FORBIDDEN, held=HELD))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                  else []))
    env.pop("DISPLAY", None)
    return env


def run_blocked(folder: Path, args: List[str], cwd: Path, timeout: float = 120) -> Tuple[int, str, str]:
    """``python -m tdm_edge.cli ARGS`` (or ``python -c CODE`` for ``["-c", CODE]``) blocked; (code, out, err)."""
    command = [sys.executable] + (args if args[:1] == ["-c"] else ["-m", "tdm_edge.cli", *args])
    done = subprocess.run(command, cwd=cwd, env=blocked_env(folder), capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout, done.stderr
