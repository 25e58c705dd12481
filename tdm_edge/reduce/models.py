"""Building token-reduced models: our registered timm variants and one ``create_model`` for every stage.

Our variants are registered under our own prefix (``tdm_deit_small_patch16_224`` ...) and never re-register
timm's names. They take the reduction settings as keyword arguments::

    timm.create_model("tdm_deit_small_patch16_224", method="bat", keep_rate=0.7)

Weights are never downloaded: pass a checkpoint file instead.
"""

from __future__ import annotations

import difflib
import os

import torch
from timm.models import register_model

from ..checkpoint import load_checkpoint
from ..errors import UsageError
from .patch import patch_vit

PREFIX = "tdm_"
BASES = (
    "deit_tiny_patch16_224",
    "deit_small_patch16_224",
    "deit_base_patch16_224",
    "deit_base_patch16_384",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch16_384",
    "vit_large_patch16_224",
)
REDUCTION_KEYS = ("method", "keep_rate", "prune_blocks", "cluster_ratio", "knn", "tome_r")
_TIMM_ONLY_KEYS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _base_model(base: str, **kwargs) -> torch.nn.Module:
    import timm

    for key in _TIMM_ONLY_KEYS:
        kwargs.pop(key, None)
    return timm.create_model(base, pretrained=False, **kwargs)


def _make_variant(base: str):
    def entrypoint(pretrained: bool = False, **kwargs) -> torch.nn.Module:
        if pretrained:
            raise UsageError("tdm-edge never downloads weights; create the model and load a checkpoint file")
        reduction = {k: kwargs.pop(k) for k in REDUCTION_KEYS if k in kwargs}
        return patch_vit(_base_model(base, **kwargs), **reduction)

    entrypoint.__name__ = entrypoint.__qualname__ = PREFIX + base
    entrypoint.__doc__ = f"timm's {base} with token reduction (BAT by default, keep rate 0.7)."
    entrypoint.__module__ = __name__
    return entrypoint


for _base in BASES:
    globals()[PREFIX + _base] = register_model(_make_variant(_base))


def create_model(name: str, *, method: str = "bat", keep_rate: float = 0.7, checkpoint: str | os.PathLike | None = None,
                 img_size: int | None = None, num_classes: int | None = None, **reduction) -> torch.nn.Module:
    """A token-reduced model in eval mode, from a timm name (``deit_small_patch16_224``) or ours (``tdm_...``).

    The checkpoint is loaded before patching (patching changes no parameter). Raises :class:`UsageError`.
    """
    import timm

    base = name.removeprefix(PREFIX)
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, timm.list_models(), n=3)
        raise UsageError(f"unknown model {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    kwargs = {}
    if img_size is not None:
        kwargs["img_size"] = img_size
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = _base_model(base, **kwargs)
    except (TypeError, ValueError, AssertionError) as err:
        raise UsageError(f"cannot build {base} with {kwargs}: {err}") from None
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, base)
    patch_vit(model, method=method, keep_rate=keep_rate, **reduction)
    return model.eval()
