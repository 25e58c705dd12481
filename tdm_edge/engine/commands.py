"""``tdm-edge build``: registered through :data:`tdm_edge.cli.STAGE_COMMANDS` (light: no tensorrt/onnx import here)."""

from __future__ import annotations

import argparse
import sys

from ..args import in_range

PRECISIONS = ("fp32", "fp16", "int8")  # == versions.PRECISIONS; repeated so that --help needs no import


def _cmd_build(args: argparse.Namespace) -> int:
    from .build import BuildFailure, ParserFailure, build_engine

    from .build import log_lines
    from .versions import parse_memory_pools

    pools = parse_memory_pools(args.mem_pool_size) if args.mem_pool_size else None
    try:
        report = build_engine(args.model, args.output, precision=args.precision, workspace_mib=args.workspace,
                              timing_cache=args.timing_cache, dla_core=args.dla, plugins=args.plugins,
                              memory_pools=pools, strongly_typed=args.strongly_typed, verbose=args.verbose)
    except ParserFailure as err:
        for line in err.lines:
            print(f"tdm-edge build: {line}", file=sys.stderr)
        print(f"tdm-edge build: TensorRT's ONNX parser rejected {args.model} ({len(err.lines)} node(s)); "
              f"tdm-edge check {args.model} --trt {err.generation} lints it without TensorRT", file=sys.stderr)
        return 1
    except BuildFailure as err:
        for line in log_lines(err.messages, args.verbose):  # TensorRT's errors always, its warnings summarised
            print(f"tdm-edge build: {line}", file=sys.stderr)
        print(f"tdm-edge build: {err}", file=sys.stderr)
        return 1
    for line in log_lines(report.messages, args.verbose) + [f"warning: {n}" for n in report.notes]:
        print(f"tdm-edge build: {line}", file=sys.stderr)
    print(report.summary())
    return 0


def add_commands(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add ``build`` to the ``tdm-edge`` subcommands."""
    p = sub.add_parser("build", help="build a TensorRT engine from an exported ONNX (TensorRT 8.5 to 11.x)")
    p.add_argument("model", help="the .onnx file written by tdm-edge export (or calibrate)")
    p.add_argument("-o", "--output", required=True, help="the engine file; its sidecar OUTPUT.json goes beside it")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="default fp16 (int8 for a Q/DQ ONNX); TensorRT 11: the ONNX's own types, which it must match")
    p.add_argument("--workspace", type=in_range(int, 1, 1 << 20, "--workspace"), default=None, metavar="MiB",
                   help="builder workspace limit in MiB (trtexec's --memPoolSize=workspace:MiB)")
    p.add_argument("--mem-pool-size", "--memPoolSize", default=None, metavar="SPEC",
                   help="memory pool limits as trtexec writes them: workspace:1024,dlaSRAM:0.5,dlaLocalDRAM:1024,"
                   "dlaGlobalDRAM:512 (MiB, or a B/K/M/G suffix)")
    p.add_argument("--strongly-typed", action="store_true",
                   help="TensorRT 10: build a strongly typed network, the ONNX's types decide (an fp16 export); "
                   "always so on 11")
    p.add_argument("--verbose", action="store_true",
                   help="print TensorRT's whole log (default: its errors, and its warnings summarised)")
    p.add_argument("--timing-cache", default=None, metavar="F", help="timing cache file, read and updated")
    p.add_argument("--dla", type=in_range(int, 0, 7, "--dla"), default=None, metavar="CORE",
                   help="build for this DLA core (GPU fallback; fp32 becomes fp16, as trtexec --useDLACore does)")
    p.add_argument("--plugins", action="append", default=[], metavar="PATH",
                   help="plugin library to load (repeatable), e.g. the fused merge plugin")
    p.set_defaults(func=_cmd_build)
