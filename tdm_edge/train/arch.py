"""Models the train stage builds: timm names (through reduce.create_model) and our small CPU-trainable ViTs.

``tdm_vit_micro_patch4_56`` keeps DeiT's token layout (56 px / 4-px patches = 196 patches + the class token = 197
tokens, so every schedule is DeiT's: 197 -> 139 -> 98 -> 69 at keep 0.7) but is far narrower and shallower than
DeiT-Tiny, because it is trained on a shared 2-core CPU: see :data:`ARCHS`. It is registered in timm under our
prefix and takes the reduction settings like the other ``tdm_`` variants::

    timm.create_model("tdm_vit_micro_patch4_56", num_classes=6, method="bat", keep_rate=0.7)
"""

from __future__ import annotations

import torch
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer

from ..errors import UsageError
from ..reduce.models import PREFIX, REDUCTION_KEYS
from ..reduce.patch import patch_vit

# architecture keyword arguments of timm's VisionTransformer; all that is needed to rebuild the model
ARCHS: dict[str, dict] = {
    "tdm_vit_micro_patch4_56": dict(img_size=56, patch_size=4, embed_dim=48, depth=4, num_heads=2, mlp_ratio=2.0),
    # the same weights at 28 px (50 tokens): a cheap first stage of progressive resizing; fine-tuning the 56-px model
    # from it resamples the position embeddings (timm's checkpoint_filter_fn)
    "tdm_vit_micro_patch4_28": dict(img_size=28, patch_size=4, embed_dim=48, depth=4, num_heads=2, mlp_ratio=2.0),
    "tdm_vit_nano_patch4_32": dict(img_size=32, patch_size=4, embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0),
}
ARCH_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "num_classes")
# our synthetic images are rendered at the input size: no resize-then-crop margin at evaluation
PRETRAINED_CFG = dict(input_size=None, interpolation="bicubic", crop_pct=1.0, crop_mode="center",
                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), num_classes=None, first_conv="patch_embed.proj",
                      classifier="head")


def build_vit(arch: dict) -> VisionTransformer:
    """A randomly initialised timm VisionTransformer from architecture keywords (``ARCH_KEYS``)."""
    unknown = set(arch) - set(ARCH_KEYS)
    if unknown:
        raise UsageError(f"unknown architecture key(s) {sorted(unknown)}")
    try:
        model = VisionTransformer(**arch)
    except (TypeError, ValueError, AssertionError) as err:
        raise UsageError(f"cannot build a ViT with {arch}: {err}") from None
    size = arch["img_size"]
    model.pretrained_cfg = dict(PRETRAINED_CFG, input_size=(3, size, size), num_classes=arch["num_classes"])
    return model


def _make_entrypoint(name: str):
    def entrypoint(pretrained: bool = False, **kwargs) -> torch.nn.Module:
        if pretrained:
            raise UsageError("tdm-edge never downloads weights; create the model and load a checkpoint file")
        reduction = {k: kwargs.pop(k) for k in REDUCTION_KEYS if k in kwargs}
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        arch = dict(ARCHS[name], num_classes=kwargs.pop("num_classes", 1000), **kwargs)
        return patch_vit(build_vit(arch), **reduction)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = f"A small ViT with DeiT's token layout for CPU training: {ARCHS[name]}."
    entrypoint.__module__ = __name__
    return entrypoint


for _name in ARCHS:
    assert _name.startswith(PREFIX)
    globals()[_name] = register_model(_make_entrypoint(_name))


def arch_of(name: str, num_classes: int) -> dict | None:
    """The architecture keywords of one of our small ViTs, or ``None`` for a timm model name."""
    return dict(ARCHS[name], num_classes=num_classes) if name in ARCHS else None


def create_train_model(name: str, num_classes: int, *, method: str = "none", keep_rate: float = 1.0,
                       checkpoint: str | None = None, **reduction) -> torch.nn.Module:
    """A model for training: one of :data:`ARCHS` or any timm ViT name, with ``num_classes`` outputs, patched.

    ``checkpoint`` (an initialisation, e.g. the unpruned model to fine-tune) may have another classifier size only
    for timm names (its head is then re-initialised by the caller); our small ViTs load it strictly.
    """
    from ..checkpoint import load_checkpoint
    from ..reduce.models import create_model

    arch = arch_of(name, num_classes)
    if arch is None:
        return create_model(name, method=method, keep_rate=keep_rate, checkpoint=checkpoint,
                            num_classes=num_classes, **reduction).train()
    model = build_vit(arch)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, name)
    return patch_vit(model, method=method, keep_rate=keep_rate, **reduction).train()
