"""``tdm-edge calibrate`` and ``tdm-edge compare``: registered through ``cli.STAGE_COMMANDS``; nothing heavy here."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..args import add_force_argument, in_range, positive_int
from ..limits import MAX_BATCH, MAX_THREADS
from ..errors import UsageError



def _add_sources(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", metavar="DIR", help="a folder of images (spread evenly when there are more)")
    src.add_argument("--video", metavar="FILE", help="a video; frames sampled evenly over its whole length")
    src.add_argument("--synthetic", type=positive_int, metavar="N", help="N drawn scenes (only to try the pipeline)")
    p.add_argument("--num", type=positive_int, default=None, help="at most this many frames (calibrate: the recipe's)")
    p.add_argument("--batch", type=in_range(int, 1, MAX_BATCH, "--batch"), default=None,
                   help="batch for a dynamic-batch model (default 8; a static model uses its own)")


def add_commands(sub, parser_class) -> None:
    """Add ``calibrate`` and ``compare`` to the ``tdm-edge`` subparsers."""
    p = sub.add_parser("calibrate", help="INT8: explicit Q/DQ for TensorRT (default) or a fast INT8 for CPUs")
    p.add_argument("model", help="the FP32 .onnx written by tdm-edge export")
    _add_sources(p)
    p.add_argument("--target", choices=["trt", "cpu"], default="trt",
                   help="trt: int8 symmetric Q/DQ (TensorRT 8.5-11); cpu: the fastest INT8 on ONNX Runtime CPU")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default=None,
                   help="calibration method (default: the recipe's)")
    p.add_argument("--recipe", metavar="FILE", default=None,
                   help="a recipe .json (default: calibration/<model>.json, else calibration/default.json)")
    p.add_argument("-o", "--output", required=True, help="the INT8 .onnx to write (a sidecar .json goes beside it)")
    add_force_argument(p)
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("compare", help="FP32 vs INT8: top-1/top-5 agreement, logit cosine, token decisions changed")
    p.add_argument("fp32", help="the FP32 .onnx")
    p.add_argument("int8", help="the INT8 .onnx calibrated from it")
    _add_sources(p)
    p.add_argument("--threads", type=in_range(int, 1, MAX_THREADS, "--threads"), default=None,
                   help="ONNX Runtime intra-op threads (default: ONNX Runtime's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_compare)


def _require(module: str, extra: str) -> None:
    from importlib.util import find_spec

    if find_spec(module) is None:
        raise UsageError(f"this command needs {module}: pip install {extra}")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    _require("onnxruntime", "onnxruntime")
    from dataclasses import replace

    from ..export.onnx_export import check_output_path
    from ..provenance import warn_if_random
    from .calibrate import CPU_MODE, calibrate, load_fp32, model_batch
    from .data import load_images
    from .recipes import find_recipe, read_recipe

    proto, meta = load_fp32(args.model)
    out = check_output_path(args.output, force=args.force)
    if os.path.abspath(out) == os.path.abspath(args.model):
        raise UsageError("the output would replace the FP32 model; give another file name")
    warn_if_random(meta, "calibrate")
    recipe = read_recipe(args.recipe) if args.recipe else find_recipe(meta.get("model", {}).get("name"))
    if args.method:
        recipe = replace(recipe, method=args.method)
    batch = model_batch(meta, args.batch)
    sources = (args.images, args.video, args.synthetic)
    dynamic_cpu = args.target == "cpu" and CPU_MODE == "dynamic"
    images = None
    if dynamic_cpu and any(s is not None for s in sources):
        print("tdm-edge calibrate: note: --target cpu quantizes activations at run time; the images are not used",
              file=sys.stderr)
    elif any(s is not None for s in sources):
        images = load_images(meta["preprocessing"], images=args.images, video=args.video,
                             synthetic=args.synthetic, num=args.num or recipe.num)
        if len(images.images) < batch:
            raise UsageError(f"{len(images.images)} calibration image(s) from {images.source}, "
                             f"fewer than one batch of {batch}")
    elif not dynamic_cpu:
        raise UsageError("calibration needs images: give --images DIR, --video FILE or --synthetic N")
    report = calibrate(args.model, out, target=args.target, recipe=recipe, images=images, batch=batch, proto=proto,
                       meta=meta)
    print(report.summary())
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    _require("onnxruntime", "onnxruntime")
    from ..export.onnx_export import read_metadata
    from ..provenance import warn_if_random
    from .calibrate import model_batch
    from .compare import compare
    from .data import load_images

    metas = []
    for path in (args.fp32, args.int8):
        from ..lint.check import load_model

        load_model(path)  # a missing or non-ONNX file: one line
        metas.append(read_metadata(path))
    fp32_meta, int8_meta = metas
    if "quantization" in fp32_meta:
        raise UsageError(f"{args.fp32} is a quantized model; give the FP32 export first")
    batches = {fp32_meta.get("onnx", {}).get("batch"), int8_meta.get("onnx", {}).get("batch")} - {None}
    if len(batches) > 1:
        raise UsageError(f"the two models have different static batches ({', '.join(map(str, sorted(batches)))})")
    warn_if_random(fp32_meta, "compare")
    batch = model_batch({"onnx": {"batch": next(iter(batches), None)}}, args.batch)
    if all(s is None for s in (args.images, args.video, args.synthetic)):
        raise UsageError("give the images to compare on: --images DIR, --video FILE or --synthetic N")
    images = load_images(fp32_meta["preprocessing"], images=args.images, video=args.video,
                         synthetic=args.synthetic, num=args.num)
    report = compare(args.fp32, args.int8, images, batch, args.threads)
    print(json.dumps({**report.as_dict(), "source": images.source}) if args.json else report.table())
    return 0
