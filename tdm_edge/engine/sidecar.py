"""The sidecar ``MODEL.engine.json`` that ``tdm-edge build`` writes beside an engine, and atomic file writes.

Reading and comparing it lives in :mod:`tdm_edge.runners.trt_env` (the runner checks it before deserialising).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..outputs import write_file
from ..provenance import sha256_file
from ..runners.trt_env import SIDECAR_FORMAT, sidecar_path

__all__ = ["atomic_write", "engine_record", "sha256_file", "write_sidecar"]

atomic_write = write_file  # one atomic, umask-respecting writer for the whole package (tdm_edge.outputs)


def engine_record(*, trt_version: str, gpu_name: str, compute_capability: str, precision: str, dla_core: int | None,
                  onnx_path: str | os.PathLike, onnx_sha256: str, plugins: dict[str, str], meta: dict) -> dict:
    """What travels with an engine.

    Args:
        trt_version: ``tensorrt.__version__`` that built it.
        gpu_name / compute_capability: the GPU it was built on (``"8.7"`` for Orin).
        precision: "fp32", "fp16" or "int8".
        dla_core: the DLA core it targets, or ``None`` for the GPU.
        onnx_path / onnx_sha256: the ONNX it was built from.
        plugins: plugin library file name -> sha256.
        meta: the ONNX's ``tdm_edge`` metadata (preprocessing, labels, reduction, weights), kept whole.
    """
    reduction = meta.get("reduction", {})
    return {
        "format": SIDECAR_FORMAT,
        "tensorrt": {"version": trt_version},
        "gpu": {"name": gpu_name, "compute_capability": compute_capability},
        "precision": precision,
        "dla_core": dla_core,
        "token_schedule": {"method": reduction.get("method"), "keep_rate": reduction.get("keep_rate"),
                           "stage_tokens": reduction.get("stage_tokens"),
                           "block_tokens": reduction.get("block_tokens")},
        "plugins": [{"file": name, "sha256": digest} for name, digest in plugins.items()],
        "onnx": {"file": Path(onnx_path).name, "sha256": onnx_sha256},
        "metadata": meta,
    }


def write_sidecar(engine_path: str | os.PathLike, record: dict) -> Path:
    side = sidecar_path(engine_path)
    atomic_write(side, (json.dumps(record, indent=1) + "\n").encode())
    return side
