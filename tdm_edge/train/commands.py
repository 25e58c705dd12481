"""``tdm-edge train``, ``tdm-edge eval`` and ``tdm-edge make-dataset`` (registered through cli.STAGE_COMMANDS).

Light module: torch, timm and Pillow are imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..args import MAX_COUNT, cluster_ratio, in_range, train_float
from ..errors import UsageError
from ..limits import CLUSTER_RATIO, KNN, MAX_BATCH, MAX_IMG_SIZE, MAX_THREADS

TRAIN_MODEL = "tdm_vit_micro_patch4_56"


def _pair(kind: type, name: str):
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected two comma-separated numbers, got {text!r}") from None
        if len(values) != 2:
            raise argparse.ArgumentTypeError(f"{name}: expected two comma-separated numbers, got {text!r}")
        return values
    return parse


def _reduction_arguments(p: argparse.ArgumentParser, defaults: bool) -> None:
    from ..args import block_list as _block_list, keep_rate as _keep_rate

    recorded = "" if defaults else " (default: the checkpoint's recorded setting)"
    p.add_argument("--method", default="bat" if defaults else None, choices=["bat", "evit", "tome", "random", "none"],
                   help="the token reduction (tdm-edge models describes each)" + recorded)
    p.add_argument("--keep-rate", type=_keep_rate, default=0.7 if defaults else None, help="rho in (0, 1]" + recorded)
    p.add_argument("--prune-blocks", type=_block_list, default=None,
                   help="0-based reducing blocks, e.g. 3,6,9 (default: " + ("the checkpoint's recorded blocks, else "
                                                                           if not defaults else "")
                        + "4th/7th/10th of 12, scaled to the depth)")
    p.add_argument("--cluster-ratio", type=cluster_ratio, default=CLUSTER_RATIO if defaults else None,
                   help="bat: DPC-kNN clusters per inattentive token, in (0, 1]" + recorded)
    p.add_argument("--knn", type=in_range(int, 1, MAX_COUNT, "--knn"), default=KNN if defaults else None,
                   help="bat: DPC-kNN neighbours" + recorded)
    p.add_argument("--tome-r", type=in_range(int, 0, MAX_COUNT, "--tome-r"), default=None,
                   help="tome: tokens merged per block (default: BAT-equal cost at --keep-rate)")


def _cmd_make_dataset(args: argparse.Namespace) -> int:
    from .dataset import class_names, make_dataset

    root = make_dataset(args.dir, classes=args.classes, per_class=args.per_class, img_size=args.img_size,
                        seed=args.seed, progress=not args.quiet)
    print(f"{root}: {args.classes} classes ({', '.join(class_names(args.classes))}) x {args.per_class} images, "
          f"{args.img_size} px, seed {args.seed}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if not args.quiet:
        _progress("loading", "torch, the data and the model (training starts after)")
    from .train import TrainConfig, train

    cfg = TrainConfig(model=args.model, data=args.data, val=args.val, output=args.output, method=args.method,
                      keep_rate=args.keep_rate, prune_blocks=args.prune_blocks, cluster_ratio=args.cluster_ratio,
                      knn=args.knn, tome_r=args.tome_r, finetune=args.finetune, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, lr_per_512=args.lr_per_512, min_lr=args.min_lr,
                      weight_decay=args.weight_decay, opt=args.opt, warmup_epochs=args.warmup_epochs,
                      keep_warmup=args.keep_warmup, mixup=args.mixup, cutmix=args.cutmix, smoothing=args.smoothing,
                      scale=args.scale, hflip=args.hflip, workers=args.workers, seed=args.seed, resume=args.resume,
                      progress=not args.quiet)
    result = train(cfg)
    if result["history"]:
        print(f"best val top-1 at the final keep rate: {result['best_top1']:.2f} % -> {result['output']}")
    return 0


def _progress(stage: str, detail: str) -> None:
    """What eval is doing before its answer (torch and the model load for seconds), for a person at a terminal:
    on stderr when it is one (stdout stays the answer, a pipe or log gets only the answer and errors)."""
    if sys.stderr.isatty():
        print(f"{stage}: {detail}...", file=sys.stderr, flush=True)


def _cmd_eval(args: argparse.Namespace) -> int:
    _progress("loading", "torch, the model and the images" if args.onnx is None else "ONNX Runtime and the images")
    from .evaluate import format_eval, run_eval, run_eval_onnx
    from .trained import demo_model_path

    if args.onnx is not None:
        given = [f"--{k.replace('_', '-')}" for k in ("checkpoint", "model", "method", "keep_rate", "prune_blocks",
                                                      "cluster_ratio", "knn", "tome_r") if getattr(args, k) is not None]
        if given:
            raise UsageError(f"--onnx evaluates the exported graph as it is; drop {', '.join(given)}")
        result = run_eval_onnx(args.onnx, args.data, batch_size=args.batch_size, threads=args.threads)
        print(json.dumps(result) if args.json else format_eval(result))
        return 0
    checkpoint = args.checkpoint or str(demo_model_path())
    result = run_eval(checkpoint, args.data, model_name=args.model, batch_size=args.batch_size, method=args.method,
                      keep_rate=args.keep_rate, prune_blocks=args.prune_blocks, cluster_ratio=args.cluster_ratio,
                      knn=args.knn, tome_r=args.tome_r)
    print(json.dumps(result) if args.json else format_eval(result))
    return 0


def add_commands(sub, parser_class) -> None:
    """Add ``make-dataset``, ``train`` and ``eval`` to the ``tdm-edge`` subparsers."""
    p = sub.add_parser("make-dataset", help="write a procedural ImageFolder (shapes on cluttered backgrounds)")
    p.add_argument("dir", help="the folder to create (must not exist or be empty)")
    p.add_argument("--classes", type=in_range(int, 2, 8, "--classes"), default=6, help="number of shape classes, 2..8 (default 6: the demo's)")
    p.add_argument("--per-class", type=in_range(int, 1, 1_000_000, "--per-class"), default=500, help="images per class (default 500)")
    p.add_argument("--img-size", type=in_range(int, 8, MAX_IMG_SIZE, "--img-size"), default=56,
                   help=f"image side in pixels, 8..{MAX_IMG_SIZE} (default 56)")
    p.add_argument("--seed", type=in_range(int, 0, 2**32 - 1, "--seed"), default=0,
                   help="the same seed gives the same bytes (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_make_dataset)

    p = sub.add_parser("train", help="train or fine-tune a token-reduced ViT (torchrun for several processes)")
    p.add_argument("--model", default=TRAIN_MODEL, help=f"timm ViT name or ours (default {TRAIN_MODEL})")
    _reduction_arguments(p, defaults=True)
    p.add_argument("--data", required=True, help="folder with train/ and val/ ImageFolders (or pass --val)")
    p.add_argument("--val", default=None, help="validation ImageFolder; then --data is the training ImageFolder")
    p.add_argument("--output", default="out/train", help="run folder: last.pth, model.safetensors (default out/train)")
    p.add_argument("--finetune", default=None, help="initial weights (a file; another classifier size is re-made)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last.pth")
    p.add_argument("--epochs", type=in_range(int, 1, 100_000, "--epochs"), default=30, help="epochs, warm-up included")
    p.add_argument("--batch-size", type=in_range(int, 1, MAX_BATCH, "--batch-size"), default=64,
                   help="per process (default 64)")
    p.add_argument("--lr", type=train_float("lr"), default=None, help="absolute lr (default: --lr-per-512 x global batch / 512)")
    p.add_argument("--lr-per-512", type=train_float("lr_per_512"), default=2e-5,
                   help="lr per 512 images of global batch, used when --lr is not given (default 2e-05, the paper's)")
    p.add_argument("--min-lr", type=train_float("min_lr"), default=2e-6, help="the cosine schedule's final lr")
    p.add_argument("--weight-decay", type=train_float("weight_decay"), default=1e-6, help="decoupled weight decay (AdamW's)")
    p.add_argument("--opt", default="adamw", help="any timm optimizer name (default adamw)")
    p.add_argument("--warmup-epochs", type=in_range(int, 0, 100_000, "--warmup-epochs"), default=0, help="linear lr warm-up epochs")
    p.add_argument("--keep-warmup", type=_pair(int, "--keep-warmup"), default=(0, 0), metavar="HOLD,RAMP",
                   help="EViT's keep-rate warm-up for training from scratch: HOLD epochs at 1.0, then RAMP to the "
                        "rate (default 0,0: none)")
    p.add_argument("--mixup", type=train_float("mixup"), default=0.8, help="mixup alpha (0 = off; default 0.8, DeiT's)")
    p.add_argument("--cutmix", type=train_float("cutmix"), default=1.0, help="cutmix alpha (0 = off; default 1.0, DeiT's)")
    p.add_argument("--smoothing", type=train_float("smoothing"), default=0.1, help="label smoothing")
    p.add_argument("--scale", type=_pair(float, "--scale"), default=(0.6, 1.0), metavar="LO,HI",
                   help="RandomResizedCrop area range (default 0.6,1)")
    p.add_argument("--hflip", type=train_float("hflip"), default=0.5, help="probability of a horizontal flip")
    p.add_argument("--workers", type=in_range(int, 0, 256, "--workers"), default=0,
                   help="data-loading processes per training process (default 0: load in the training process)")
    p.add_argument("--seed", type=in_range(int, 0, 2**32 - 1, "--seed"), default=0,
                   help="initial weights, data order and augmentation; the same seed repeats the run (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5, GMACs and token schedule of a trained model on an ImageFolder")
    p.add_argument("--checkpoint", default=None, help="a file written by tdm-edge train (default: the demo model)")
    p.add_argument("--onnx", default=None, help="instead: an exported or INT8-calibrated .onnx, run on ONNX Runtime")
    p.add_argument("--data", required=True, help="an ImageFolder whose classes are the model's labels")
    p.add_argument("--model", default=None, help="only for checkpoints without a record: the timm/our model name")
    _reduction_arguments(p, defaults=False)
    p.add_argument("--batch-size", type=in_range(int, 1, MAX_BATCH, "--batch-size"), default=128,
                   help="images per forward pass (default 128)")
    p.add_argument("--threads", type=in_range(int, 1, MAX_THREADS, "--threads"), default=None,
                   help="ONNX Runtime intra-op threads, with --onnx (default: ONNX Runtime's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=_cmd_eval)


__all__ = ["add_commands"]
