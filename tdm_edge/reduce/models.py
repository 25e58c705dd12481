"""Building token-reduced models: our registered timm variants and one ``create_model`` for every stage.

Our variants are registered under our own prefix (``tdm_deit_small_patch16_224`` ...) and never re-register
timm's names. They take the reduction settings as keyword arguments::

    timm.create_model("tdm_deit_small_patch16_224", method="bat", keep_rate=0.7)

Weights are never downloaded: pass a checkpoint file instead.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
from dataclasses import dataclass

import torch
from timm.models import register_model

from ..checkpoint import load_checkpoint
from ..errors import UsageError, first_line
from ..provenance import RANDOM, record_weights
from .patch import patch_vit
from .schedule import build_schedule, check_image_size, check_knn, check_options, check_tome_r

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


# timm modules whose models are built by VisionTransformer itself; `tdm-edge models` inspects these.
VIT_MODULES = ("vision_transformer", "deit")


@dataclass(frozen=True)
class Architecture:
    """What a timm model name builds, read from its constructor arguments (no model is built).

    ``problems`` says why token reduction cannot patch it (empty: it can).
    """

    name: str
    problems: tuple[str, ...]
    patch_size: int | None = None
    img_size: int | None = None
    depth: int | None = None
    embed_dim: int | None = None
    num_heads: int | None = None

    @property
    def patchable(self) -> bool:
        return not self.problems

    @property
    def num_tokens(self) -> int:
        """Tokens entering the first block at the default image size: patches plus the class token."""
        return (self.img_size // self.patch_size) ** 2 + 1


class _Captured(Exception):
    """Raised by the stand-in ``VisionTransformer.__init__`` to hand its arguments back before anything is built."""


@contextlib.contextmanager
def _capture_vit_arguments():
    """Within the block, ``VisionTransformer(...)`` raises :class:`_Captured` with ``(class, arguments)``.

    The class attribute is swapped for the duration of the block, so no other thread may build a ViT meanwhile.
    """
    from timm.models.vision_transformer import VisionTransformer

    original = VisionTransformer.__init__
    signature = inspect.signature(original)

    def capture(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        raise _Captured(type(self), {k: v for k, v in bound.arguments.items() if k != "self"})

    VisionTransformer.__init__ = capture
    try:
        yield
    finally:
        VisionTransformer.__init__ = original


def _square(value) -> int | None:
    if isinstance(value, int):
        return value
    return value[0] if len(set(value)) == 1 else None


def _problems(cls: type, args: dict) -> list[str]:
    from timm.layers import PatchEmbed
    from timm.models.vision_transformer import Attention, Block, VisionTransformer

    problems = []
    if cls is not VisionTransformer:
        problems.append("a distillation token" if "Distilled" in cls.__name__ else f"a {cls.__name__}")
    if not args.get("class_token", True):
        problems.append("no class token")
    regs = args.get("reg_tokens", 0)
    if regs:
        problems.append(f"{regs} register token{'s' if regs > 1 else ''}")
    if args.get("dynamic_img_size", False):
        problems.append("a dynamic image size")
    for key, standard, what in (("block_fn", Block, "{} blocks"), ("attn_layer", Attention, "{} attention"),
                                ("embed_layer", PatchEmbed, "a {} patch embedding")):
        used = args.get(key, standard)
        if used is not standard:
            problems.append(what.format(getattr(used, "__name__", used)))
    if _square(args["img_size"]) is None or _square(args["patch_size"]) is None:
        problems.append("non-square images or patches")
    return problems


def architecture(name: str, **kwargs) -> Architecture:
    """Inspect a timm model name without building it (~1 ms): its constructor arguments, checked for patching."""
    import timm

    base = timm_name(name)
    try:
        with torch.device("meta"), _capture_vit_arguments():  # meta: a non-ViT entrypoint allocates nothing
            timm.models.model_entrypoint(base)(pretrained=False, **kwargs)
    except _Captured as captured:
        cls, args = captured.args
    except Exception as err:
        return Architecture(name, (f"cannot be inspected ({first_line(err)})",))
    else:
        return Architecture(name, ("not a timm VisionTransformer",))
    return Architecture(name, tuple(_problems(cls, args)), _square(args["patch_size"]), _square(args["img_size"]),
                        args["depth"], args["embed_dim"], args["num_heads"])


def list_architectures(pattern: str = "") -> list[Architecture]:
    """Every timm ViT name (``vision_transformer`` and ``deit`` modules), inspected; ``pattern`` as timm's filter."""
    import timm

    return [architecture(n) for n in timm.list_models(pattern or "", module=list(VIT_MODULES))]


def patchable_models() -> list[str]:
    """timm names that token reduction can patch: one class token, no register/distillation token, fixed size."""
    return [a.name for a in list_architectures() if a.patchable]


def timm_name(name: str) -> str:
    """The timm entrypoint a name builds: ours of timm's models drop the prefix (``tdm_deit_small_patch16_224`` ->
    ``deit_small_patch16_224``); the project's own architectures keep it (``tdm_vit_micro_patch4_56``, registered
    by :mod:`tdm_edge.train.arch`)."""
    import timm

    base = name.removeprefix(PREFIX)
    return name if base not in BASES and name.startswith(PREFIX) and timm.is_model(name) else base


def resolve_architecture(name: str) -> Architecture:
    """The architecture of a name that can be patched, else :class:`UsageError` (did you mean ...?)."""
    import timm

    base = timm_name(name)
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, patchable_models(), n=3)
        raise UsageError(f"unknown model {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                         + "; tdm-edge models lists the ones that work")
    arch = architecture(base)
    if not arch.patchable:
        raise UsageError(f"{name} cannot be token-reduced: {', '.join(arch.problems)} "
                         "(tdm-edge models lists the ones that can)")
    return arch


def create_model(name: str, *, method: str = "bat", keep_rate: float | None = None,
                 checkpoint: str | os.PathLike | None = None, img_size: int | None = None,
                 num_classes: int | None = None, **reduction) -> torch.nn.Module:
    """A token-reduced model in eval mode, from a timm name (``deit_small_patch16_224``) or ours (``tdm_...``).

    Every setting is checked before the model is built or a checkpoint is read: the name (only patchable ones
    are suggested), the image size against the model's patch size, options in ``reduction`` that the method
    would ignore, the whole schedule. The checkpoint is loaded before patching
    (patching changes no parameter) and recorded on the model for the export's provenance. Raises
    :class:`UsageError` in one line.

    Args:
        name: timm model name, with or without our ``tdm_`` prefix.
        method: ``bat``, ``evit``, ``tome``, ``random`` or ``none``.
        keep_rate: rho in (0, 1]; default 0.7 (ignored by ``none``; for ToMe: r matched to BAT's cost at this rate
            unless ``tome_r`` is given).
        checkpoint: ``.pth``/``.pt``/``.safetensors`` file; none = random weights (recorded as such).
        img_size: input size in pixels, a multiple of the patch size (default: the model's).
        num_classes: classifier size, >= 1 (default: the model's).
        reduction: ``prune_blocks``, ``cluster_ratio``, ``knn``, ``tome_r`` as :func:`patch_vit` takes them.
    """
    arch = resolve_architecture(name)
    check_options(method, reduction)  # keep_rate is shared by every method a caller loops over: not refused here
    size = img_size if img_size is not None else arch.img_size
    per_side = check_image_size(size, arch.patch_size, name)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise UsageError(f"number of classes must be an integer >= 1, got {num_classes}")
    rate = 1.0 if method == "none" else 0.7 if keep_rate is None else keep_rate  # none: the metadata says 1.0
    settings = {"keep_rate": rate, **reduction}
    check_tome_r(per_side ** 2 + 1, reduction.get("tome_r"))
    check_knn(build_schedule(per_side ** 2 + 1, arch.depth, method, **settings), reduction.get("knn"))
    kwargs = {k: v for k, v in (("img_size", img_size), ("num_classes", num_classes)) if v is not None}
    base = timm_name(name)
    if base.startswith(PREFIX):  # our own architecture's entrypoint patches: build it unreduced, patched below
        kwargs["method"] = "none"
    try:
        model = _base_model(base, **kwargs)
    except (TypeError, ValueError, AssertionError) as err:
        raise UsageError(f"cannot build {base} with {kwargs}: {first_line(err)}") from None
    record_weights(model, RANDOM)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, base)
    patch_vit(model, method=method, **settings)
    return model.eval()
