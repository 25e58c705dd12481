"""Offline checkpoint loading: timm/DeiT weights from ``.pth``, ``.pt`` or ``.safetensors`` files.

Nothing is downloaded. Official DeiT files keep their weights under a ``model`` key; training checkpoints may use
``state_dict`` / ``state_dict_ema`` and a DistributedDataParallel ``module.`` prefix. timm's own
``checkpoint_filter_fn`` adapts the rest (e.g. resampling position embeddings to another image size).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from .errors import UsageError, first_line

SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
WRAPPER_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema", "module")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict. Raises :class:`UsageError` in one line."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle garbage, bad safetensors header...
        raise UsageError(f"cannot read checkpoint {path} ({first_line(err, with_type=True)})") from None
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UsageError(f"{path} holds no state_dict of tensors (top-level keys: {list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__})")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike, name: str = "model") -> torch.nn.Module:
    """Load weights into ``model`` strictly; a mismatch raises one line naming the first differences."""
    from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

    state = read_state_dict(path)
    if isinstance(model, VisionTransformer):
        try:
            state = checkpoint_filter_fn(state, model)
        except Exception as err:
            raise UsageError(f"checkpoint {os.fspath(path)} does not fit {name} ({first_line(err, with_type=True)})") from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es), first {shapes[0]}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), first {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first {unexpected[0]}")
        raise UsageError(f"checkpoint {os.fspath(path)} does not fit {name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model
