"""The ``tdm-edge`` command: one subcommand per pipeline stage.

Every subcommand turns bad input (:class:`~tdm_edge.errors.UsageError`, unreadable files) into one line on
stderr and exit code 2. Arguments that need no model (sizes, counts, ranges, paths, the checkpoint's format) are
checked before torch is imported; heavy libraries are imported inside the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

from . import __version__
from .errors import DeviceError, UsageError, capped, first_line
from .args import Progress, add_force_argument, add_model_arguments, check_model_arguments, in_range
from .limits import MAX_BATCH, METHOD_HELP, OPSETS
from .sides import check_command_side, workstation_hint

# Sub-packages that register subcommands: each names a light module (no torch/onnx/cv2 import at module level)
# with ``add_commands(subparsers, parser_class)``, which adds its parsers and sets ``func`` on each.
STAGE_COMMANDS: list[str] = [
    ".engine.commands",
    ".bench.commands",
    ".quantize.commands",
    ".video.commands",
    ".train.commands",
    ".doctor.commands",
]


def model_label(args: argparse.Namespace) -> str:
    """The model the options name, as its record names it: a trained checkpoint's own model, else ``--model``."""
    if args.checkpoint is not None and "model" not in getattr(args, "given_options", frozenset()):
        from .train.trained import has_record, read_record

        if has_record(args.checkpoint):
            record = read_record(args.checkpoint)
            return f"{record['model']} from {os.path.basename(args.checkpoint)}"
    return f"{args.model} ({args.method})"


def _stderr_progress(started: float):
    """``progress(stage, detail)`` lines on stderr (stdout stays the command's answer, e.g. one JSON object)."""
    def progress(stage: str, detail: str = "") -> None:
        line = f"[{time.perf_counter() - started:6.1f} s] {stage}" + (f": {detail}" if detail else "")
        print(line, file=sys.stderr, flush=True)
    return progress


def _cmd_flops(args: argparse.Namespace) -> int:
    # what it is doing while torch loads (~5 s): on stdout like export's, on stderr with --json (one JSON object)
    progress = _stderr_progress(args.started) if args.json else Progress(args.started)
    progress("import", "torch, timm")
    from .reduce.flops import flops_report

    progress("build", model_label(args))
    from .train.trained import model_from_args

    model = model_from_args(args)  # a trained checkpoint's record names the model (args.model)
    progress("count", "GMACs of the pruned and the unpruned model")
    report = flops_report(model, batch=1, name=args.model)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(report.table())
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .lint.check import check_model, load_model

    model = load_model(args.model)
    findings = check_model(model, args.trt, precision=args.precision)
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

    check_output_path(args.output, suffix=".onnx", force=args.force)  # both paths fail before torch is imported
    check_output_path(sidecar_path(args.output), what="sidecar", force=args.force)
    if args.method == "random":
        raise UsageError("method 'random' draws new tokens on every run and cannot be verified; "
                         "export bat, evit, tome or none")
    if args.precision == "fp16" and args.merge != "ops":
        raise UsageError("--precision fp16 needs --merge ops: the TdmBatMerge plugin graph is fp32")
    if args.native_layer_norm and args.opset < 17:
        raise UsageError(f"--native-layer-norm needs --opset 17 or later (LayerNormalization), got {args.opset}")
    progress = Progress(args.started)
    progress("import", "torch, timm, onnx")
    from .export.onnx_export import VerificationError, export_onnx

    progress("build", model_label(args))
    from .train.trained import model_from_args

    model = model_from_args(args)  # a trained checkpoint's record names the model (args.model)
    from .reduce.models import timm_name
    try:
        report = export_onnx(model, args.output, batch=args.batch, dynamic_batch=args.dynamic_batch,
                             opset=args.opset, verify=not args.no_verify, simplify=not args.no_simplify,
                             name=timm_name(args.model), merge=args.merge, labels=getattr(args, "labels", None),
                             selection_outputs=args.selection_outputs, progress=progress,
                             precision=args.precision, native_layer_norm=args.native_layer_norm)
    except VerificationError as err:
        print(f"tdm-edge export: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"done in {progress.elapsed():.1f} s wall time, imports included")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .model_catalog import catalog, matching, variants
    from .train.commands import TRAIN_MODEL

    print("methods:", flush=True)  # the first line before anything slow
    for method, text in METHOD_HELP.items():
        print(f"  {method:7s} {text}")
    entries = matching(catalog(log=lambda m: print(m, file=sys.stderr, flush=True)), args.pattern)
    timm_entries = [e for e in entries if not e.own]
    good = [e for e in timm_entries if e.patchable]
    header = f"  {'name':40s} {'patch':>5s} {'image':>5s} {'depth':>5s} {'dim':>5s} {'heads':>5s}"
    row = lambda e: (f"  {e.name:40s} {e.patch_size:5d} {e.img_size:5d} {e.depth:5d} {e.embed_dim:5d} "  # noqa: E731
                     f"{e.num_heads:5d}")
    print(f"\ntimm models token reduction can patch{f' matching {args.pattern!r}' if args.pattern else ''}: "
          f"{len(good)} (one class token, no register or distillation tokens, fixed image size, timm's "
          "standard blocks)")
    print(header)
    for e in good:
        print(row(e))
    print("registered with timm as tdm_<name> (after `import tdm_edge.reduce`): " + ", ".join(variants()))
    own = [e for e in entries if e.own]
    if own:
        print(f"\nthe project's own models (registered with timm after `import tdm_edge.train`; "
              f"train's default and the demo model's is {TRAIN_MODEL}): {len(own)}")
        print(header)
        for e in own:
            print(row(e))
    bad = [e for e in timm_entries if not e.patchable]
    if args.all:
        print(f"\ntimm ViTs that cannot be patched: {len(bad)}")
        for e in bad:
            print(f"  {e.name:40s} {', '.join(e.problems)}")
    elif bad:
        print(f"({len(bad)} other timm ViTs cannot be patched: --all lists them with the reason)")
    return 0


DESCRIPTION = ("token-pruned Vision Transformers (BAT, EViT, ToMe) from timm to the edge: count, export, lint, "
               "build, calibrate to INT8, benchmark, run on cameras, train. One subcommand per pipeline stage; "
               "`tdm-edge COMMAND --help` for each.")


def default_text(value) -> str:
    """A default as a user would type it: ``(1, 8)`` -> ``1,8``, ``0.7`` -> ``0.7``, ``2e-05`` -> ``2e-05``."""
    if isinstance(value, (tuple, list)):
        return ",".join(default_text(v) for v in value)
    return str(value)


def shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` should name this option's default: it has a value a user could leave out."""
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._StoreTrueAction,
                           argparse._StoreFalseAction, argparse._SubParsersAction)):
        return False
    if not action.option_strings and action.nargs != "?":
        return False  # a required positional has no default
    if action.required or any(action.default is v for v in (None, False, True, argparse.SUPPRESS)):
        return False
    return default_text(action.default) != ""  # an empty list or pattern: nothing to name


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help names its default: appended as ``(default X)`` unless the help already says it."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and shows_default(action):  # argparse prints nothing for an option without help
            action = copy.copy(action)
            action.help = "default " + default_text(action.default).replace("%", "%%")
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action):
            value = default_text(action.default).replace("%", "%%")
            if "default" not in text.lower() and not text.rstrip().endswith(f"({value})"):
                text = f"{text} (default {value})" if text else f"default {value}"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``tdm-edge flops: error: ...``) and exit code 2; help that names
    every default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _describe_subcommands(sub) -> None:
    """A subcommand registered without a description gets its one-line help as one (shown by its --help)."""
    helps = {action.dest: action.help for action in sub._choices_actions}
    for name, parser in sub.choices.items():
        if not parser.description and helps.get(name):
            parser.description = helps[name][:1].upper() + helps[name][1:] + "."


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tdm-edge", description=DESCRIPTION)
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

    from .lint.trt_ops import TRT_TARGETS  # a plain data module: no onnx import until `check` runs

    p = sub.add_parser("check", help="lint an ONNX model for the TensorRT ONNX parser (no TensorRT needed)")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--trt", choices=TRT_TARGETS, default="10", metavar="{8.5,8.6,10,10.0..10.15,11}",
                   help="TensorRT release to check for; 10 = every 10.x (default 10)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default=None,
                   help="the engine precision you will build (default: the export's metadata, else the ONNX's "
                        "own types); TensorRT 11 builds only in the ONNX's types")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("export", help="export to ONNX with static token counts, verified against PyTorch")
    add_model_arguments(p)
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write (a sidecar .json goes beside it)")
    add_force_argument(p)
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=in_range(int, 1, MAX_BATCH, "--batch"), default=1,
                       help="static batch size (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="make the batch the one dynamic axis")
    p.add_argument("--opset", type=in_range(int, OPSETS.start, OPSETS.stop - 1, "--opset"), default=17,
                   help="ONNX opset (default 17, the newest TensorRT 8.5 parses)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    p.add_argument("--no-simplify", action="store_true", help="skip onnx-simplifier")
    p.add_argument("--merge", choices=("ops", "plugin"), default="ops",
                   help="BAT stages as standard ONNX ops (default) or as one TdmBatMerge TensorRT plugin node each")
    p.add_argument("--selection-outputs", action="store_true",
                   help="also output the token selections (for tdm-edge run --show-tokens on a TensorRT engine)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help="fp16: fp16 weights and activations, fp32 input and logits, LayerNorms and token selection "
                        "kept fp32 by Casts; what TensorRT 11 needs for an fp16 engine (default fp32)")
    p.add_argument("--native-layer-norm", action="store_true",
                   help="keep ONNX LayerNormalization (opset >= 17; TensorRT >= 8.6 parses it, 8.5 does not)")
    p.set_defaults(func=_cmd_export)

    from importlib import import_module

    for module in STAGE_COMMANDS:  # each later stage registers its own subcommands
        import_module(module, __package__).add_commands(sub, _Parser)
    _describe_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse's usage errors exit 2 (one line, _Parser.error); --version exits 0
    args.started = started
    try:
        if getattr(args, "model_arguments", False):
            check_model_arguments(args)  # before any subcommand imports torch
        check_command_side(args.command)  # a workstation command on Python < 3.10: one line
        return args.func(args)
    except UsageError as err:
        print(f"tdm-edge {args.command}: error: {capped(str(err))}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # torch & co. on a device-only install: one line naming the extra
        hint = workstation_hint(err, args.command)
        if hint is None:
            raise
        print(f"tdm-edge {args.command}: error: {hint}", file=sys.stderr)
        return 2
    except DeviceError as err:
        print(f"tdm-edge {args.command}: error: {capped(first_line(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tdm-edge {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`tdm-edge eval ... | head -1`): stop quietly, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit-time flush must not fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
