"""The device suite's files: from ``TDM_DEVICE_FIXTURES`` (the Python 3.8 run, no torch), else written here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .fixtures import FILES


@pytest.fixture(scope="session")
def device_files(tmp_path_factory) -> Path:
    """A folder holding pruned.onnx, unpruned.onnx (tdm-edge exports) and clip.mp4."""
    given = os.environ.get("TDM_DEVICE_FIXTURES")
    if given:
        folder = Path(given).resolve()  # the commands run in their own folders
        missing = [f for f in FILES if not (folder / f).is_file()]
        assert not missing, f"TDM_DEVICE_FIXTURES={given} lacks {missing}: python -m tests.device.fixtures {given}"
        return folder
    try:
        import torch  # noqa: F401
    except ImportError:
        pytest.skip("no torch to export the fixtures with, and no TDM_DEVICE_FIXTURES folder (make test-device)")
    from .fixtures import make_fixtures

    return make_fixtures(tmp_path_factory.mktemp("device"))
