"""Offline checkpoint loading: timm/DeiT weights from ``.pth``, ``.pt`` or ``.safetensors`` files.

Nothing is downloaded. Official DeiT files keep their weights under a ``model`` key; training checkpoints may use
``state_dict`` / ``state_dict_ema`` and a DistributedDataParallel ``module.`` prefix. timm's own
``checkpoint_filter_fn`` adapts the rest (e.g. resampling position embeddings to another image size).
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .errors import UsageError, first_line

if TYPE_CHECKING:
    import torch

SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
WRAPPER_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema", "module")


def sniff_format(path: str | os.PathLike) -> str:
    """``"torch-zip"``, ``"torch-pickle"`` or ``"safetensors"`` from the file's first bytes (torch not imported).

    Raises :class:`UsageError` in one line for what is not a checkpoint file: a directory, an empty file, text,
    random bytes, a ``.safetensors`` name on something else.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UsageError(f"checkpoint {path} is a directory; give the weights file inside it")
    if not os.path.exists(path):
        raise UsageError(f"checkpoint not found: {path}")
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path} is not a regular file")
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        raise UsageError(f"cannot read checkpoint {path}: {err.strerror or err}") from None
    if size == 0:
        raise UsageError(f"checkpoint {path} is empty")
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch-pickle"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8:
        return "safetensors"
    looks = "text" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "unrecognised binary data"
    if path.endswith(".safetensors"):
        raise UsageError(f"checkpoint {path} is named .safetensors but is not one (no safetensors header; "
                         f"it starts with {looks})")
    raise UsageError(f"checkpoint {path} is not a PyTorch (.pth/.pt) or safetensors file (it starts with {looks})")


def _load(path: str, kind: str):
    """The object in a checkpoint file, loaded without running pickled code; one-line errors."""
    import torch

    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        with open(path, "rb") as f, warnings.catch_warnings():  # a file object: torch picks no loader by the name
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says what matters
            return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as err:  # PyTorch's own text advises weights_only=False: wrong for garbage and unsafe
        text = str(err)
        needed = re.findall(r"GLOBAL ([\w.]+)", text)
        if needed:
            raise UsageError(f"checkpoint {path} holds pickled Python objects, not only tensors (it needs "
                             f"{needed[0]}); tdm-edge runs no pickled code: save model.state_dict() instead") from None
        if "Weights only load failed" in text or "magic number" in text:
            raise UsageError(f"checkpoint {path} is a pickle but not a PyTorch checkpoint of tensors; "
                             "save model.state_dict() with torch.save") from None
        if kind == "torch-zip":
            raise UsageError(f"checkpoint {path} is a damaged or truncated PyTorch file "
                             f"({first_line(err)})") from None
        raise UsageError(f"cannot read checkpoint {path} ({first_line(err, with_type=True)})") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict. Raises :class:`UsageError` in one line.

    The format is taken from the content, not the name; nothing is unpickled except tensors.
    """
    import torch

    path = os.fspath(path)
    obj = _load(path, sniff_format(path))
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = f"top-level keys: {list(obj)[:5]}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise UsageError(f"{path} holds no state_dict of tensors ({found})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}  # DDP's prefix


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike, name: str = "model") -> torch.nn.Module:
    """Load weights into ``model`` strictly; a mismatch raises one line naming the first differences.

    The model remembers the file (name and sha256, :func:`tdm_edge.provenance.weights_of`) for its exports.
    """
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
    from .provenance import record_weights, weights_record

    record_weights(model, weights_record(path))
    return model
