"""The device venv's skip rule (tests/device/workstation_skip.py): only a test's own need for torch is skipped."""

from __future__ import annotations

import pytest

from .workstation_skip import ROOT, needs_workstation


def raised_in(relative: str, name: str = "torch"):
    code = compile(f"raise ModuleNotFoundError('no such module', name={name!r})", str(ROOT / relative),
                   "exec")
    with pytest.raises(ModuleNotFoundError) as excinfo:
        exec(code, {})
    return excinfo


def test_a_test_or_a_workstation_module_needing_torch_is_skipped():
    assert needs_workstation(raised_in("tests/engine/test_build.py"))
    assert needs_workstation(raised_in("tdm_edge/export/onnx_export.py"))
    assert needs_workstation(raised_in("tests/lint/test_check.py", "timm.models"))


def test_a_device_module_needing_torch_still_fails():
    assert not needs_workstation(raised_in("tdm_edge/metadata.py"))
    assert not needs_workstation(raised_in("tdm_edge/video/backends.py"))
    assert not needs_workstation(raised_in("tests/engine/test_build.py", "cv2"))  # not a workstation package
