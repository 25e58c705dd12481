"""Trained-model files that describe themselves, and the demo model shipped in the package.

A trained model is a ``.safetensors`` file whose string metadata carries, under the key ``tdm_edge``, one JSON
object: the model name, the architecture keywords (our small ViTs) or the timm name, the reduction (method,
keep rate, blocks, cluster ratio, kNN k), the labels and the preprocessing. So a file is enough to rebuild the
model: ``load_trained(path)``. Training checkpoints (``last.pth``) carry the same record under ``"record"``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..args import check_model_arguments, given_reduction
from ..errors import UsageError

META_KEY = "tdm_edge"
DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


def demo_model_path() -> Path:
    """The shipped demo model (a BAT ViT trained on the procedural shapes, see its MODEL_CARD.md)."""
    return DEMO_DIR / "model.safetensors"


def atomic_replace(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` umask permissions and move it over ``path`` (same folder, so the rename is atomic)."""
    from ..outputs import umask_mode

    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)


def save_trained(path: str | os.PathLike, state: dict, record: dict) -> None:
    """Write ``state`` (a state_dict) to a safetensors file with ``record`` in its metadata, atomically."""
    import tempfile

    from safetensors.torch import save_file

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous() for k, v in state.items()}, tmp, metadata={META_KEY: json.dumps(record)})
        atomic_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def has_record(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a self-describing model written by ``tdm-edge train`` (False for any other file)."""
    try:
        read_record(path)
    except UsageError:
        return False
    return True


def read_record(path: str | os.PathLike) -> dict:
    """The record a trained model carries; one-line UsageError for files without one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as err:  # a bad header: safetensors raises its own error types
            raise UsageError(f"cannot read {path} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
        if META_KEY not in meta:
            raise UsageError(f"{path} records no architecture/labels (not written by tdm-edge train); pass --model")
        return json.loads(meta[META_KEY])
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UsageError(f"cannot read checkpoint {path} ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or "record" not in ckpt:
        raise UsageError(f"{path} records no architecture/labels (not written by tdm-edge train); pass --model")
    return ckpt["record"]


def build_from_record(record: dict, **reduction):
    """A freshly initialised, patched model from a record; ``reduction`` overrides the recorded settings."""
    from .arch import build_vit
    from ..reduce.models import create_model
    from ..reduce.patch import patch_vit

    settings = dict(record["reduction"], **{k: v for k, v in reduction.items() if v is not None})
    if settings.get("prune_blocks") is not None:
        settings["prune_blocks"] = tuple(settings["prune_blocks"])
    if record.get("arch"):
        return patch_vit(build_vit(record["arch"]), **settings).eval()
    return create_model(record["model"], num_classes=len(record["labels"]), **settings)


def load_trained(path: str | os.PathLike, **reduction):
    """``(model, record)`` from a self-describing trained model; ``reduction`` overrides method/keep rate/...

    Raises a one-line UsageError when the file has no record or its weights do not fit the recorded model.
    """
    from ..checkpoint import load_checkpoint

    record = read_record(path)
    try:
        model = build_from_record(record, **reduction)
    except KeyError as err:
        raise UsageError(f"{path}: its record lacks {err}") from None
    load_checkpoint(model, path, record["model"])
    return model.eval(), record


def model_from_args(args: argparse.Namespace):
    """The model the options describe (checked first); only the reduction options given are passed on."""
    check_model_arguments(args)
    given = given_reduction(args)
    if args.checkpoint is not None and "model" not in getattr(args, "given_options", frozenset()):
        if has_record(args.checkpoint):  # a model written by tdm-edge train brings its architecture and labels
            method = args.method if "method" in args.given_options else None
            model, record = load_trained(args.checkpoint, method=method, **given)
            args.model, args.labels = record["model"], record["labels"]  # what the export's metadata records
            return model
    from ..reduce.models import create_model
    from . import arch as _own_models  # noqa: F401  registers the project's own (tdm_vit_micro_patch4_56 ...)

    reduction = {k: v for k, v in given.items() if v is not None and k != "keep_rate"}
    return create_model(args.model, method=args.method, keep_rate=given["keep_rate"], checkpoint=args.checkpoint,
                        img_size=args.img_size, num_classes=args.num_classes, **reduction)
