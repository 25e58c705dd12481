"""Argument types and the model options shared by the stage commands (below the stages: nothing here imports a stage
at module level, and :mod:`tdm_edge.cli` is never imported back).

Every check here needs no torch; :func:`tdm_edge.train.trained.model_from_args` builds the model they describe (workstation side).
"""

from __future__ import annotations

import argparse
import math
import time

from .limits import (CLUSTER_RATIO, KNN, MAX_CLASSES, MAX_IMG_SIZE, METHODS, TRAIN_FLOATS, check_image_size,
                     check_options, patch_size_from_name)

DEFAULT_MODEL = "deit_small_patch16_224"
REDUCTION_OPTIONS = ("keep_rate", "prune_blocks", "cluster_ratio", "knn", "tome_r")


def number(text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None


def in_range(kind: type, low, high, what: str, above: bool = False):
    """An argparse type: ``kind`` parsed from the text, within ``low..high`` (``high=None``: no upper bound;
    ``above``: strictly greater than ``low``). A float must be finite: NaN and Inf are refused with the bound."""
    def parse(text: str):
        value = number(text, kind)
        ok = (value > low if above else low <= value) and (high is None or value <= high)  # NaN fails both
        if not ok or (kind is float and not math.isfinite(value)):
            bound = (f"> {low}" if above else f">= {low}") + (f" and <= {high}" if high is not None else "")
            if not above and high is not None:
                bound = f"in {low}..{high}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, got {text}")
        return value
    parse.bounds = (kind, low, high, above)  # read by the option audit test
    return parse


MAX_COUNT = 2**31 - 1  # what a C int holds: the bound of counts passed on to OpenCV, ONNX Runtime, TensorRT


def train_float(field: str):
    """The argparse type of a training run's float setting ``field`` (``"lr"`` -> ``--lr``), bounded as
    :data:`tdm_edge.limits.TRAIN_FLOATS` says."""
    low, high, above = TRAIN_FLOATS[field]
    return in_range(float, low, high, "--" + field.replace("_", "-"), above=above)


def positive_int(text: str) -> int:
    """An argparse type for counts (frames, top-k): an integer in 1..2**31-1."""
    value = number(text, int)
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be a positive integer (at most {MAX_COUNT}), got {value}")
    return value


positive_int.bounds = (int, 1, MAX_COUNT, False)  # read by the option audit test


def keep_rate(text: str) -> float:
    value = number(text, float)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"keep rate must be in (0, 1], got {value}")
    return value


def cluster_ratio(text: str) -> float:
    value = number(text, float)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"cluster ratio must be in (0, 1], got {value}")
    return value


def block_list(text: str) -> tuple[int, ...]:
    try:
        blocks = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block indices, got {text!r}") from None
    if not blocks:
        raise argparse.ArgumentTypeError("no block given; name at least one, e.g. 3,6,9")
    if min(blocks) < 0 or max(blocks) > 1000:
        raise argparse.ArgumentTypeError(f"block indices are 0-based and at most 1000, got {text!r}")
    return blocks


def add_force_argument(p: argparse.ArgumentParser) -> None:
    """``--force``: replace an output file that is write-protected (refused otherwise, in one line)."""
    p.add_argument("--force", action="store_true",
                   help="replace an existing output file even if it is write-protected (default: refuse)")


class _Given(argparse.Action):
    """Stores the value and records that the option was given (``args.given_options``), for method checks."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given_options = frozenset(getattr(namespace, "given_options", frozenset()) | {self.dest})


def add_model_arguments(p: argparse.ArgumentParser, default_method: str = "bat") -> None:
    """The model + reduction options shared by every subcommand that builds a model."""
    p.add_argument("--model", default=DEFAULT_MODEL, action=_Given,
                   help="timm ViT name, e.g. deit_small_patch16_224 (default); `tdm-edge models` lists them; "
                        "not needed with a --checkpoint written by tdm-edge train")
    p.add_argument("--method", default=default_method, choices=METHODS, action=_Given,
                   help="the token reduction (tdm-edge models describes each)")
    p.add_argument("--keep-rate", type=keep_rate, default=0.7, action=_Given,
                   help="rho in (0, 1] (default 0.7; for tome: r matched to BAT's cost at this rate)")
    p.add_argument("--img-size", type=in_range(int, 1, MAX_IMG_SIZE, "image size"), default=None,
                   help="input size in pixels, a multiple of the patch size (default: the model's)")
    p.add_argument("--prune-blocks", type=block_list, default=None, action=_Given,
                   help="bat/evit/random: 0-based reducing blocks, e.g. 3,6,9 (default: 4th/7th/10th of 12, scaled)")
    p.add_argument("--cluster-ratio", type=cluster_ratio, default=CLUSTER_RATIO, action=_Given,
                   help=f"bat: clusters per inattentive token, in (0, 1] ({CLUSTER_RATIO})")
    p.add_argument("--knn", type=in_range(int, 1, MAX_COUNT, "--knn"), default=KNN, action=_Given,
                   help=f"bat: DPC-kNN neighbours, at most the inattentive tokens of a stage ({KNN})")
    p.add_argument("--tome-r", type=in_range(int, 0, MAX_COUNT, "--tome-r"), default=None, action=_Given,
                   help="tome: tokens merged per block (default: BAT-equal cost at --keep-rate)")
    p.add_argument("--checkpoint", default=None, help=".pth/.pt/.safetensors weights (never downloaded)")
    p.add_argument("--num-classes", type=in_range(int, 1, MAX_CLASSES, "--num-classes"), default=None,
                   help="classifier size if the checkpoint differs")
    p.set_defaults(given_options=frozenset(), model_arguments=True)


def given_reduction(args: argparse.Namespace) -> dict:
    given = getattr(args, "given_options", frozenset())
    return {k: (getattr(args, k) if k in given else None) for k in REDUCTION_OPTIONS}


def given_model_options(args: argparse.Namespace) -> list[str]:
    """The model-building options the user gave (``--keep-rate``, ``--checkpoint``...), as spelled on the command
    line: what an exported ``.onnx``/``.engine`` cannot honour (its method, rates and sizes are fixed)."""
    given = getattr(args, "given_options", frozenset())
    named = [f"--{dest.replace('_', '-')}" for dest in ("method", *REDUCTION_OPTIONS) if dest in given]
    return named + [f"--{dest.replace('_', '-')}" for dest in ("img_size", "checkpoint", "num_classes")
                    if getattr(args, dest, None) is not None]


def check_model_arguments(args: argparse.Namespace) -> None:
    """Every check of the model options that needs no torch: method options, image size, the checkpoint file."""
    check_options(args.method, given_reduction(args))
    if args.img_size is not None:
        check_image_size(args.img_size, patch_size_from_name(args.model), args.model)
    if args.checkpoint is not None:
        from .checkpoint import sniff_format

        sniff_format(args.checkpoint)


class Progress:
    """Prints each stage of a long command as it starts, with the wall time since the command began."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.perf_counter() if started is None else started

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, stage: str, detail: str = "") -> None:
        print(f"[{self.elapsed():6.1f} s] {stage}" + (f": {detail}" if detail else ""), flush=True)
