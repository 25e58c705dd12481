"""The ``tdm-edge`` command: one subcommand per pipeline stage.

Every subcommand turns bad input (:class:`~tdm_edge.errors.UsageError`, unreadable files) into one line on
stderr and exit code 2; heavy libraries are imported inside the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import UsageError

DEFAULT_MODEL = "deit_small_patch16_224"

# Sub-packages that register subcommands: each names a light module (no torch/onnx/cv2 import at module level)
# with ``add_commands(subparsers, parser_class)``, which adds its parsers and sets ``func`` on each.
STAGE_COMMANDS: list[str] = [
    ".engine.commands",
    ".bench.commands",
    ".quantize.commands",
]


def _keep_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"keep rate must be in (0, 1], got {value}")
    return value


def _block_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block indices, got {text!r}") from None


def add_model_arguments(p: argparse.ArgumentParser, default_method: str = "bat") -> None:
    """The model + reduction options shared by every subcommand that builds a model."""
    p.add_argument("--model", default=DEFAULT_MODEL, help="timm ViT name, e.g. deit_small_patch16_224 (default)")
    p.add_argument("--method", default=default_method, choices=["bat", "evit", "tome", "random", "none"])
    p.add_argument("--keep-rate", type=_keep_rate, default=0.7, help="rho in (0, 1] (default 0.7)")
    p.add_argument("--img-size", type=int, default=None, help="input size in pixels (default: the model's)")
    p.add_argument("--prune-blocks", type=_block_list, default=None,
                   help="0-based reducing blocks, e.g. 3,6,9 (default: 4th/7th/10th of 12, scaled)")
    p.add_argument("--cluster-ratio", type=float, default=0.25, help="BAT clusters per inattentive token (0.25)")
    p.add_argument("--knn", type=int, default=5, help="DPC-kNN neighbours (5)")
    p.add_argument("--tome-r", type=int, default=None, help="ToMe merges per block (default: BAT-equal cost)")
    p.add_argument("--checkpoint", default=None, help=".pth/.pt/.safetensors weights (never downloaded)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier size if the checkpoint differs")


def build_model_from_args(args: argparse.Namespace):
    from .reduce.models import create_model

    return create_model(args.model, method=args.method, keep_rate=args.keep_rate, checkpoint=args.checkpoint,
                        img_size=args.img_size, num_classes=args.num_classes, prune_blocks=args.prune_blocks,
                        cluster_ratio=args.cluster_ratio, knn=args.knn, tome_r=args.tome_r)


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
    from .export.onnx_export import VerificationError, check_output_path, export_onnx

    check_output_path(args.output)  # an unwritable path fails before the model is built
    model = build_model_from_args(args)
    try:
        report = export_onnx(model, args.output, batch=args.batch, dynamic_batch=args.dynamic_batch,
                             opset=args.opset, verify=not args.no_verify, simplify=not args.no_simplify,
                             name=args.model.removeprefix("tdm_"), merge=args.merge)
    except VerificationError as err:
        print(f"tdm-edge export: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``tdm-edge flops: error: ...``) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tdm-edge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

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
    batch.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="make the batch the one dynamic axis")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17, the newest TensorRT 8.5 parses)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    p.add_argument("--no-simplify", action="store_true", help="skip onnx-simplifier")
    p.add_argument("--merge", choices=("ops", "plugin"), default="ops",
                   help="BAT stages as standard ONNX ops (default) or as one TdmBatMerge TensorRT plugin node each")
    p.set_defaults(func=_cmd_export)

    from importlib import import_module

    for module in STAGE_COMMANDS:  # each later stage registers its own subcommands
        import_module(module, __package__).add_commands(sub, _Parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 through argparse
    try:
        return args.func(args)
    except UsageError as err:
        print(f"tdm-edge {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tdm-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
