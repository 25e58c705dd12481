"""The limits of every setting that can be checked before torch is imported or a model is built.

Light on purpose (standard library only): the command line runs these checks first, so a wrong ``--batch`` or
``--img-size`` is reported in well under a second instead of after torch, timm and a model have loaded.
:mod:`tdm_edge.reduce` and :mod:`tdm_edge.export` use the same constants and functions for their own checks.
"""

from __future__ import annotations

import re

from .errors import UsageError

METHODS = ("bat", "evit", "tome", "random", "none")
METHOD_HELP = {
    "bat": "attentive tokens matched and merged, inattentive ones clustered by DPC-kNN (BAT, CVPR 2023)",
    "evit": "top tokens kept, the rest fused into one token by class attention (EViT)",
    "tome": "r tokens merged in every block by bipartite soft matching (ToMe)",
    "random": "a control: K random tokens kept (cannot be exported: it draws new tokens on every run)",
    "none": "the unreduced model",
}
# BAT's settings the paper leaves open (METHOD.md), set from benchmarks/results/equal_cost.md: after fine-tuning,
# cluster ratio 0.25 was best or level with the best of 0.1 / 0.5, and DPC-kNN's k (3 / 5 / 8) moved top-1 by <= 0.5.
CLUSTER_RATIO = 0.25
KNN = 5
MAX_IMG_SIZE = 1024  # pixels: 4096 patch tokens at patch 16; beyond it the attention matrices outgrow edge memory
MAX_BATCH = 1024
MAX_FRAME_SIDE = 8192  # pixels: a camera/synthetic frame side; an 8K BGR frame is 200 MB, more exhausts a Jetson
MAX_THREADS = 1024
# every float setting of a training run: (lowest, highest, lowest excluded); both train's option types
# (args.train_float) and train.check_config (for callers of the Python API) read this one table
TRAIN_FLOATS = {"lr": (0.0, 10.0, True), "lr_per_512": (0.0, 10.0, True), "min_lr": (0.0, 10.0, False),
                "warmup_lr": (0.0, 10.0, False), "weight_decay": (0.0, 10.0, False), "mixup": (0.0, 100.0, False),
                "cutmix": (0.0, 100.0, False), "smoothing": (0.0, 0.999, False), "hflip": (0.0, 1.0, False)}
MAX_CLASSES = 1_000_000
OPSETS = range(14, 21)  # 14: the first with every op used here; 20: the newest the TorchScript exporter writes

# Which explicitly given reduction options each method uses, and how the command line spells them.
OPTIONS = {"keep_rate": "--keep-rate", "prune_blocks": "--prune-blocks", "cluster_ratio": "--cluster-ratio",
           "knn": "--knn", "tome_r": "--tome-r"}
APPLIES = {"bat": ("keep_rate", "prune_blocks", "cluster_ratio", "knn"), "evit": ("keep_rate", "prune_blocks"),
           "random": ("keep_rate", "prune_blocks"), "tome": ("keep_rate", "tome_r"), "none": ()}


def check_options(method: str, given: dict) -> None:
    """Refuse explicitly given reduction options that ``method`` would ignore (``None`` in ``given``: not given).

    Args:
        method: one of :data:`METHODS`.
        given: ``{"keep_rate": ..., "prune_blocks": ..., "cluster_ratio": ..., "knn": ..., "tome_r": ...}``.
    """
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    unused = [OPTIONS[k] for k, v in given.items() if k in OPTIONS and v is not None and k not in APPLIES[method]]
    if unused:
        uses = ", ".join(OPTIONS[k] for k in APPLIES[method]) or "no reduction option"
        raise UsageError(f"{', '.join(unused)} does not apply to method {method} (it uses {uses})")
    if method == "tome" and given.get("tome_r") is not None and given.get("keep_rate") is not None:
        raise UsageError("tome takes --tome-r or --keep-rate (r matched to BAT's cost at that rate), not both")
    if given.get("prune_blocks") is not None and not tuple(given["prune_blocks"]):
        raise UsageError("--prune-blocks is empty; name at least one block, e.g. 3,6,9")


def patch_size_from_name(name: str) -> int | None:
    """The patch size a timm name spells (``deit_small_patch16_224`` -> 16), ``None`` if it spells none."""
    found = re.findall(r"patch(\d+)", name)
    return int(found[0]) if len(found) == 1 else None


def check_image_size(img_size: int, patch_size: int | None, model: str = "the model") -> int:
    """Refuse an image size that is not positive, beyond :data:`MAX_IMG_SIZE` or not a multiple of the patch size.

    timm would silently crop 100 px to 96 px with 16 px patches; here that is an error naming the nearest sizes
    that work. Returns the number of patches per side (0 when ``patch_size`` is not known yet).
    """
    if isinstance(img_size, bool) or not isinstance(img_size, int) or not 0 < img_size <= MAX_IMG_SIZE:
        raise UsageError(f"image size must be an integer in 1..{MAX_IMG_SIZE} pixels, got {img_size}")
    if patch_size is None:
        return 0
    if img_size % patch_size:
        lower = img_size - img_size % patch_size
        near = " or ".join(str(v) for v in (lower, lower + patch_size) if 0 < v <= MAX_IMG_SIZE)
        raise UsageError(f"image size {img_size} is not a multiple of {model}'s patch size {patch_size} "
                         f"(try {near})")
    return img_size // patch_size
