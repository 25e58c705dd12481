"""Reading the ``tdm_edge`` metadata an export writes into its ``.onnx`` file and sidecar ``.json``.

Device side: no torch, and the ONNX file is read without the ``onnx`` package (a protobuf walk of the
``metadata_props`` field only), so a Jetson needs neither onnx nor a numpy 2 to run or build an export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UsageError

METADATA_KEY = "tdm_edge"
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``tdm_edge`` metadata of an exported ``.onnx`` file, or of its sidecar ``.json``."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        import onnx

        proto = onnx.load(os.fspath(path), load_external_data=False)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {path}: {err}") from None
    except Exception as err:  # onnx raises protobuf's DecodeError for files that are not ONNX
        raise UsageError(f"{path} is not an ONNX model ({type(err).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise UsageError(f"{path} has no {METADATA_KEY!r} metadata; was it exported by tdm-edge export?")
    return json.loads(props[METADATA_KEY])
