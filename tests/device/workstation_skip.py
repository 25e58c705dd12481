"""pytest plugin for the device venv (``-p tests.device.workstation_skip``; no torch installed there).

A test that itself needs the workstation side (it exports a model with torch, say) is reported as skipped, not
failed: its ``ModuleNotFoundError`` for torch & co. was raised by an import in a test file or in a workstation
module. The same error raised by an import in a device module is a broken contract and still fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tdm_edge.sides import FORBIDDEN, side_of

ROOT = Path(__file__).resolve().parents[2]


def importing_module(tb) -> str:
    """The dotted name of the file whose import failed (the innermost frame outside importlib)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    for filename in reversed(frames):
        if "importlib" in filename or filename.startswith("<") or filename.endswith("sitecustomize.py"):
            continue
        path = Path(filename).resolve()
        try:
            rel = path.relative_to(ROOT).with_suffix("")
        except ValueError:
            return ""
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        return ".".join(parts)
    return ""


def needs_workstation(excinfo) -> bool:
    err = excinfo.value
    if not isinstance(err, ModuleNotFoundError) or (err.name or "").split(".")[0] not in FORBIDDEN:
        return False
    module = importing_module(excinfo.tb)
    return module.startswith("tests.") or side_of(module) == "workstation"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed and needs_workstation(call.excinfo):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"needs the workstation side ({call.excinfo.value.name}): runs in the main suite")
