"""``tdm-edge bench`` and ``tdm-edge tune``: parsed and checked here, without importing torch."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..args import add_force_argument, in_range
from ..errors import UsageError
from ..limits import MAX_BATCH, MAX_IMG_SIZE, MAX_THREADS, check_image_size, patch_size_from_name
from ..sides import require_workstation
from .backends import BACKENDS, check_backend, require_backend
from .files import SUFFIX_BACKENDS, is_model_file


def int_list(text: str) -> tuple[int, ...]:
    """``"1,8,64"`` -> ``(1, 8, 64)``; every value a positive integer."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    if max(values) > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"batch sizes must be at most {MAX_BATCH} (memory), got {max(values)}")
    return values


def rate_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated keep rates, got {text!r}") from None
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"keep rates must be in (0, 1], got {text!r}")
    return tuple(sorted(set(values), reverse=True))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="deit_small_patch16_224",
                   help="timm ViT name (default deit_small_patch16_224); bench also takes an exported .onnx or an "
                        ".engine, measured against --baseline")
    p.add_argument("--method", default="bat", choices=["bat", "evit", "tome"], help="reduction under test")
    p.add_argument("--checkpoint", default=None, help="weights (default: random, made trained-like; a warning says so)")
    p.add_argument("--backend", default=None,
                   help=f"one of {', '.join(BACKENDS)} (default ort; for files: ort for .onnx, trt for an engine)")
    p.add_argument("--precision", default=None, help="fp32 (default) | fp16 | int8, as the backend allows")
    p.add_argument("--threads", type=in_range(int, 1, MAX_THREADS, "--threads"), default=2,
                   help="CPU threads for ort/torch (default 2)")
    from ..engine.cache import add_engine_arguments  # light: argparse only

    add_engine_arguments(p, cache=False)  # --plugins, --cuda (H4)
    p.add_argument("--img-size", type=in_range(int, 1, MAX_IMG_SIZE, "image size"), default=None,
                   help=f"input size in pixels, at most {MAX_IMG_SIZE} (default: the model's)")


def _check_common(args: argparse.Namespace) -> None:
    args.backend, args.precision = args.backend or "ort", args.precision or "fp32"
    check_backend(args.backend, args.precision)
    require_backend(args.backend)  # TensorRT missing: one line now, not after exporting every model
    if args.img_size is not None:  # the same rule as every other command's --img-size, before torch loads
        model = getattr(args, "model", None) or "the model"
        check_image_size(args.img_size, patch_size_from_name(model), model)
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        raise UsageError(f"checkpoint not found: {args.checkpoint}")


def _model_kwargs(args: argparse.Namespace) -> dict:
    return {} if args.img_size is None else {"img_size": args.img_size}


def _warn_random(args: argparse.Namespace, command: str) -> None:
    if args.checkpoint is None:  # bench and tune build their models: random weights unless a checkpoint is given
        from ..provenance import RANDOM, warn_if_random

        warn_if_random({"weights": RANDOM}, command)


def _check_bench_outputs(args: argparse.Namespace) -> None:
    if args.runs < 1 or args.repeats < 1:
        raise UsageError("--runs and --repeats must be >= 1")
    for path in (args.json, args.plot):
        if path and (os.path.isdir(path) or not os.path.isdir(os.path.dirname(os.path.abspath(path)))):
            raise UsageError(f"cannot write {path}: not a file path in an existing folder")


def _cmd_bench(args: argparse.Namespace) -> int:
    if is_model_file(args.model) or args.baseline is not None:
        return _bench_files(args)
    return _bench_models(args)


def _bench_files(args: argparse.Namespace) -> int:
    """``--model pruned.onnx --baseline unpruned.onnx`` (or two engines): no torch, the files' own metadata."""
    suffixes = "/".join(SUFFIX_BACKENDS)
    if not is_model_file(args.model):
        raise UsageError(f"--baseline compares two files: give the pruned model as --model ({suffixes})")
    if args.baseline is None:
        raise UsageError(f"bench of a file needs the unpruned model to compare with: --baseline FILE ({suffixes})")
    for option in ("checkpoint", "img_size", "precision", "plot"):
        if getattr(args, option) is not None:
            raise UsageError(f"--{option.replace('_', '-')} does not apply to bench of files (their metadata and "
                             "build fix it)")
    if args.extra:
        raise UsageError("--extra builds more models; bench of files measures the two files given")
    if args.batch is not None and len(args.batch) > 1:
        raise UsageError("bench of files runs one batch (a file's static batch, or --batch N for a dynamic one)")
    _check_bench_outputs(args)
    start = time.perf_counter()
    from .files import file_table, run_file_bench

    result = run_file_bench(args.model, args.baseline, args.backend, args.batch[0] if args.batch else None,
                            args.threads, rounds=args.runs, repeats=args.repeats,
                            log=lambda m: print(m, file=sys.stderr, flush=True), plugins=tuple(args.plugins),
                            cuda=args.cuda)
    print(file_table(result))
    _write_json(args, result)
    print(f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _write_json(args: argparse.Namespace, result: dict) -> None:
    if args.json:
        from ..outputs import write_file

        write_file(args.json, (json.dumps(result, indent=1) + "\n").encode())
        print(f"wrote {args.json}")


def _bench_models(args: argparse.Namespace) -> int:
    """``--model NAME``: the compared models built from one set of weights (workstation side: torch)."""
    _check_common(args)
    _check_bench_outputs(args)
    require_workstation("bench --model NAME (it builds the models)")
    start = time.perf_counter()
    _warn_random(args, "bench")
    from .run import BenchConfig, run_bench, table

    cfg = BenchConfig(model=args.model, keep_rate=args.keep_rate, method=args.method, checkpoint=args.checkpoint,
                      backend=args.backend, precision=args.precision, batches=args.batch or (1, 8),
                      threads=args.threads, rounds=args.runs, repeats=args.repeats, extras=tuple(args.extra),
                      model_kwargs=_model_kwargs(args), plugins=tuple(args.plugins), cuda=args.cuda)
    result = run_bench(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(result))
    _write_json(args, result)
    if args.plot:
        from .plot import plot_bench

        plot_bench(result, args.plot)
        print(f"wrote {args.plot}")
    print(f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    backend = args.backend or "ort"
    if args.output.endswith(".engine") != (backend == "trt"):  # what the backend writes, before anything else
        raise UsageError(f"tune --backend {backend} writes " + ("an .engine: give -o NAME.engine" if backend == "trt"
                         else "an .onnx, not an .engine: give -o NAME.onnx (or --backend trt)"))
    _check_common(args)
    from ..outputs import check_output_path

    check_output_path(args.output[: -len(".engine")] + ".onnx" if args.output.endswith(".engine") else args.output,
                      force=args.force)
    require_workstation("tune (it builds the models)")
    _warn_random(args, "tune")
    from .tune import ladder_table, measure_ladder, pick, slower_than_unpruned, write_choice

    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rungs, models = measure_ladder(args.model, args.keep_rates, args.backend, args.precision, args.method,
                                   args.checkpoint, args.threads, rounds=args.runs, log=log,
                                   plugins=tuple(args.plugins), cuda=args.cuda, **_model_kwargs(args))
    chosen = pick(rungs, args.target_fps)
    print(ladder_table(rungs, args.target_fps, chosen))
    refused = slower_than_unpruned(rungs)
    if refused:
        print(f"not recommended: keep rate {', '.join(f'{r.keep_rate:g}' for r in refused)} "
              f"{'is' if len(refused) == 1 else 'are'} not faster than the unpruned model here (the merge's fixed "
              "cost per stage outweighs the work it saves on this model and backend)", file=sys.stderr)
    if chosen is None:
        best = max(rungs, key=lambda r: r.fps)
        print(f"tdm-edge tune: no keep rate reaches {args.target_fps:g} FPS on this device (best: "
              f"{best.fps:.1f} FPS at keep rate {best.keep_rate}); nothing written", file=sys.stderr)
        return 1
    print(f"chosen: keep rate {chosen.keep_rate} ({chosen.fps:.1f} FPS >= {args.target_fps:g})")
    name, labels = args.model, None
    if args.checkpoint is not None:
        from ..train.trained import has_record, read_record

        if has_record(args.checkpoint):  # a trained model's own name and labels go into the chosen model's metadata
            record = read_record(args.checkpoint)
            name, labels = record["model"], record["labels"]
    write_choice(models[chosen.keep_rate], args.output, args.backend, args.precision, name, log=log, labels=labels,
                 plugins=tuple(args.plugins))
    return 0



def add_commands(sub, parser_class) -> None:
    from ..args import keep_rate as _keep_rate

    p = sub.add_parser("bench", help="latency of a pruned model against unpruned and the ideal slice, one run")
    _common(p)
    p.add_argument("--keep-rate", type=_keep_rate, default=0.7, help="rho in (0, 1] (default 0.7)")
    p.add_argument("--baseline", default=None, metavar="FILE",
                   help="with --model pruned.onnx (or .engine): the unpruned model's file to measure it against")
    p.add_argument("--batch", type=int_list, default=None,
                   help="batch sizes, e.g. 1,8,64 (default 1,8; files: their own static batch)")
    p.add_argument("--runs", type=in_range(int, 1, 100_000, "--runs"), default=20, help="interleaved rounds per process (default 20)")
    p.add_argument("--repeats", type=in_range(int, 1, 1000, "--repeats"), default=3, help="fresh processes the measurement is repeated in (3)")
    p.add_argument("--extra", action="append", default=[], choices=["evit", "tome"],
                   help="also measure this method at the same keep rate (repeatable)")
    p.add_argument("--json", default=None, help="write the result as JSON")
    p.add_argument("--plot", default=None, help="write a PNG of the latencies")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("tune", help="the highest keep rate that meets a target FPS on this device")
    _common(p)
    p.add_argument("--target-fps", type=in_range(float, 0.0, 1e6, "--target-fps", above=True), required=True, help="frames per second to meet at batch 1 (p50)")
    p.add_argument("--keep-rates", type=rate_list, default=(1.0, 0.9, 0.8, 0.7, 0.6, 0.5),
                   help="the ladder (default 1.0,0.9,0.8,0.7,0.6,0.5); the unpruned model (1.0) is always measured "
                        "beside it, and a keep rate that is not faster than unpruned is never chosen")
    p.add_argument("--runs", type=in_range(int, 1, 100_000, "--runs"), default=10, help="interleaved rounds (default 10)")
    p.add_argument("-o", "--output", required=True, help="where the chosen model goes (.onnx, or .engine for trt)")
    add_force_argument(p)
    p.set_defaults(func=_cmd_tune)
