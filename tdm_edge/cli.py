"""The ``tdm-edge`` command: one subcommand per pipeline stage.

Every subcommand turns bad input (:class:`~tdm_edge.errors.UsageError`, unreadable files) into one line on
stderr and exit code 2. Arguments that need no model (sizes, counts, ranges, paths, the checkpoint's format) are
checked before torch is imported; heavy libraries are imported inside the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import __version__
from .errors import DeviceError, UsageError, first_line
from .limits import (CLUSTER_RATIO, KNN, MAX_BATCH, MAX_CLASSES, MAX_IMG_SIZE, METHOD_HELP, METHODS, OPSETS,
                     check_image_size, check_options, patch_size_from_name)

DEFAULT_MODEL = "deit_small_patch16_224"
REDUCTION_OPTIONS = ("keep_rate", "prune_blocks", "cluster_ratio", "knn", "tome_r")

# Sub-packages that register subcommands: each names a light module (no torch/onnx/cv2 import at module level)
# with ``add_commands(subparsers, parser_class)``, which adds its parsers and sets ``func`` on each.
STAGE_COMMANDS: list[str] = [
    ".engine.commands",
    ".bench.commands",
    ".quantize.commands",
    ".video.commands",
    ".train.commands",
]


def _number(text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None


def _in_range(kind: type, low, high, what: str):
    """An argparse type: ``kind`` parsed from the text, within ``low..high`` (``high=None``: no upper bound)."""
    def parse(text: str):
        value = _number(text, kind)
        if not (low <= value and (high is None or value <= high)):  # NaN fails too
            bound = f"in {low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, got {text}")
        return value
    return parse


def positive_int(text: str) -> int:
    """An argparse type for counts (frames, threads, top-k): an integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _keep_rate(text: str) -> float:
    value = _number(text, float)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"keep rate must be in (0, 1], got {value}")
    return value


def _cluster_ratio(text: str) -> float:
    value = _number(text, float)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"cluster ratio must be in (0, 1], got {value}")
    return value


def _block_list(text: str) -> tuple[int, ...]:
    try:
        blocks = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block indices, got {text!r}") from None
    if not blocks:
        raise argparse.ArgumentTypeError("no block given; name at least one, e.g. 3,6,9")
    return blocks


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
    p.add_argument("--method", default=default_method, choices=METHODS, action=_Given)
    p.add_argument("--keep-rate", type=_keep_rate, default=0.7, action=_Given,
                   help="rho in (0, 1] (default 0.7; for tome: r matched to BAT's cost at this rate)")
    p.add_argument("--img-size", type=_in_range(int, 1, MAX_IMG_SIZE, "image size"), default=None,
                   help="input size in pixels, a multiple of the patch size (default: the model's)")
    p.add_argument("--prune-blocks", type=_block_list, default=None, action=_Given,
                   help="bat/evit/random: 0-based reducing blocks, e.g. 3,6,9 (default: 4th/7th/10th of 12, scaled)")
    p.add_argument("--cluster-ratio", type=_cluster_ratio, default=CLUSTER_RATIO, action=_Given,
                   help=f"bat: clusters per inattentive token, in (0, 1] ({CLUSTER_RATIO})")
    p.add_argument("--knn", type=_in_range(int, 1, None, "--knn"), default=KNN, action=_Given,
                   help=f"bat: DPC-kNN neighbours, at most the inattentive tokens of a stage ({KNN})")
    p.add_argument("--tome-r", type=_in_range(int, 0, None, "--tome-r"), default=None, action=_Given,
                   help="tome: tokens merged per block (default: BAT-equal cost at --keep-rate)")
    p.add_argument("--checkpoint", default=None, help=".pth/.pt/.safetensors weights (never downloaded)")
    p.add_argument("--num-classes", type=_in_range(int, 1, MAX_CLASSES, "--num-classes"), default=None,
                   help="classifier size if the checkpoint differs")
    p.set_defaults(given_options=frozenset(), model_arguments=True)


def _given_reduction(args: argparse.Namespace) -> dict:
    given = getattr(args, "given_options", frozenset())
    return {k: (getattr(args, k) if k in given else None) for k in REDUCTION_OPTIONS}


def check_model_arguments(args: argparse.Namespace) -> None:
    """Every check of the model options that needs no torch: method options, image size, the checkpoint file."""
    check_options(args.method, _given_reduction(args))
    if args.img_size is not None:
        check_image_size(args.img_size, patch_size_from_name(args.model), args.model)
    if args.checkpoint is not None:
        from .checkpoint import sniff_format

        sniff_format(args.checkpoint)


def build_model_from_args(args: argparse.Namespace):
    """The model the options describe (checked first); only the reduction options given are passed on."""
    check_model_arguments(args)
    given = _given_reduction(args)
    if args.checkpoint is not None and "model" not in getattr(args, "given_options", frozenset()):
        from .train.trained import has_record, load_trained

        if has_record(args.checkpoint):  # a model written by tdm-edge train brings its architecture and labels
            method = args.method if "method" in args.given_options else None
            model, record = load_trained(args.checkpoint, method=method, **given)
            args.model, args.labels = record["model"], record["labels"]  # what the export's metadata records
            return model
    from .reduce.models import create_model

    reduction = {k: v for k, v in given.items() if v is not None and k != "keep_rate"}
    return create_model(args.model, method=args.method, keep_rate=given["keep_rate"], checkpoint=args.checkpoint,
                        img_size=args.img_size, num_classes=args.num_classes, **reduction)


class Progress:
    """Prints each stage of a long command as it starts, with the wall time since the command began."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.perf_counter() if started is None else started

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, stage: str, detail: str = "") -> None:
        print(f"[{self.elapsed():6.1f} s] {stage}" + (f": {detail}" if detail else ""), flush=True)


def _cmd_flops(args: argparse.Namespace) -> int:
    from .reduce.flops import flops_report

    report = flops_report(build_model_from_args(args), batch=1)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(report.table())
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .export.check import check_model, load_model

    model = load_model(args.model)
    findings = check_model(model, args.trt)
    nodes = len(model.graph.node)
    if not findings:
        print(f"{args.model}: clean for TensorRT {args.trt} ({nodes} nodes)")
        return 0
    for finding in findings:
        print(finding)
    plugins = sum(f.kind == "plugin" for f in findings)
    extra = f", {plugins} need a plugin loaded" if plugins else ""
    print(f"{args.model}: {len(findings)} problem(s) for TensorRT {args.trt} ({nodes} nodes{extra})")
    return 1


def _cmd_export(args: argparse.Namespace) -> int:
    from .outputs import check_output_path, sidecar_path

    check_output_path(args.output, suffix=".onnx")  # both paths fail before torch is imported
    check_output_path(sidecar_path(args.output), what="sidecar")
    if args.method == "random":
        raise UsageError("method 'random' draws new tokens on every run and cannot be verified; "
                         "export bat, evit, tome or none")
    progress = Progress(args.started)
    progress("import", "torch, timm, onnx")
    from .export.onnx_export import VerificationError, export_onnx

    progress("build", f"{args.model} ({args.method})")
    model = build_model_from_args(args)
    try:
        report = export_onnx(model, args.output, batch=args.batch, dynamic_batch=args.dynamic_batch,
                             opset=args.opset, verify=not args.no_verify, simplify=not args.no_simplify,
                             name=args.model.removeprefix("tdm_"), merge=args.merge, labels=getattr(args, "labels", None),
                             selection_outputs=args.selection_outputs, progress=progress)
    except VerificationError as err:
        print(f"tdm-edge export: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"done in {progress.elapsed():.1f} s wall time, imports included")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .reduce.models import PREFIX, BASES, list_architectures

    print("methods:")
    for method, text in METHOD_HELP.items():
        print(f"  {method:7s} {text}")
    archs = list_architectures(args.pattern)
    good = [a for a in archs if a.patchable]
    print(f"\ntimm models token reduction can patch{f' matching {args.pattern!r}' if args.pattern else ''}: "
          f"{len(good)} (one class token, no register or distillation tokens, fixed image size, timm's "
          "standard blocks)")
    print(f"  {'name':40s} {'patch':>5s} {'image':>5s} {'depth':>5s} {'dim':>5s} {'heads':>5s}")
    for a in good:
        print(f"  {a.name:40s} {a.patch_size:5d} {a.img_size:5d} {a.depth:5d} {a.embed_dim:5d} {a.num_heads:5d}")
    print(f"\nregistered with timm as {PREFIX}<name> (after `import tdm_edge.reduce`): {', '.join(BASES)}")
    bad = [a for a in archs if not a.patchable]
    if args.all:
        print(f"\ntimm ViTs that cannot be patched: {len(bad)}")
        for a in bad:
            print(f"  {a.name:40s} {', '.join(a.problems)}")
    elif bad:
        print(f"({len(bad)} other timm ViTs cannot be patched: --all lists them with the reason)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``tdm-edge flops: error: ...``) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tdm-edge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tdm-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="the timm models token reduction can patch, and the methods")
    p.add_argument("pattern", nargs="?", default="", help="timm-style filter, e.g. 'deit*'")
    p.add_argument("--all", action="store_true", help="also list the timm ViTs that cannot be patched, and why")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("flops", help="token counts per block and GMACs (the BAT paper's counting)")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_flops)

    from .export.trt_ops import TRT_TARGETS  # a plain data module: no onnx import until `check` runs

    p = sub.add_parser("check", help="lint an ONNX model for the TensorRT ONNX parser (no TensorRT needed)")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--trt", choices=TRT_TARGETS, default="10", metavar="{8.5,8.6,10,10.0..10.15,11}",
                   help="TensorRT release to check for; 10 = every 10.x (default 10)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("export", help="export to ONNX with static token counts, verified against PyTorch")
    add_model_arguments(p)
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write (a sidecar .json goes beside it)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=_in_range(int, 1, MAX_BATCH, "--batch"), default=1,
                       help="static batch size (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="make the batch the one dynamic axis")
    p.add_argument("--opset", type=_in_range(int, OPSETS.start, OPSETS.stop - 1, "--opset"), default=17,
                   help="ONNX opset (default 17, the newest TensorRT 8.5 parses)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    p.add_argument("--no-simplify", action="store_true", help="skip onnx-simplifier")
    p.add_argument("--merge", choices=("ops", "plugin"), default="ops",
                   help="BAT stages as standard ONNX ops (default) or as one TdmBatMerge TensorRT plugin node each")
    p.add_argument("--selection-outputs", action="store_true",
                   help="also output the token selections (for tdm-edge run --show-tokens on a TensorRT engine)")
    p.set_defaults(func=_cmd_export)

    from importlib import import_module

    for module in STAGE_COMMANDS:  # each later stage registers its own subcommands
        import_module(module, __package__).add_commands(sub, _Parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse's usage errors exit 2 (one line, _Parser.error); --version exits 0
    args.started = started
    try:
        if getattr(args, "model_arguments", False):
            check_model_arguments(args)  # before any subcommand imports torch
        return args.func(args)
    except UsageError as err:
        print(f"tdm-edge {args.command}: error: {err}", file=sys.stderr)
        return 2
    except DeviceError as err:
        print(f"tdm-edge {args.command}: error: {first_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tdm-edge {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`tdm-edge eval ... | head -1`): stop quietly, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit-time flush must not fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
