"""What an exported model (or engine) says about its weights, and the warning every consumer prints for random ones.

:func:`tdm_edge.checkpoint.load_checkpoint` records the file on the model (:func:`weights_of`); a model whose
weights were set any other way counts as random unless the exporter is told (``export_onnx(weights=...)``).
An export records ``meta["weights"]``: the string ``"random"`` for untrained weights, or
``{"file": NAME, "sha256": HEX}`` for a checkpoint. Every command that consumes a model (calibrate, build, run,
bench) calls :func:`warn_if_random`, so an untrained model can never pass for a trained one.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import TextIO

RANDOM = "random"


def weights_record(checkpoint: str | os.PathLike | None) -> str | dict:
    """``"random"`` without a checkpoint, else the checkpoint's file name and sha256."""
    if checkpoint is None:
        return RANDOM
    return {"file": os.path.basename(os.fspath(checkpoint)), "sha256": sha256_file(checkpoint)}


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_weights(model, record: str | dict) -> None:
    """Remember on ``model`` where its weights came from (``"random"`` or :func:`weights_record`'s dict)."""
    model.tdm_weights = record


def weights_of(model) -> str | dict:
    """Where ``model``'s weights came from; ``"random"`` unless a checkpoint was loaded through tdm-edge."""
    return getattr(model, "tdm_weights", RANDOM)


def has_random_weights(meta: dict) -> bool:
    """True when the metadata says random weights, or says nothing about weights (older exports)."""
    return meta.get("weights", RANDOM) == RANDOM


def describe_weights(meta: dict) -> str:
    weights = meta.get("weights", RANDOM)
    if weights == RANDOM:
        return "random weights (untrained)"
    return f"{weights['file']} (sha256 {weights['sha256'][:12]})"


def warn_if_random(meta: dict, command: str, stream: TextIO | None = None) -> bool:
    """Print one warning line for a model with random weights; return whether it did."""
    if not has_random_weights(meta):
        return False
    print(f"tdm-edge {command}: warning: this model has random weights (no checkpoint); "
          "its outputs mean nothing", file=stream or sys.stderr)
    return True
