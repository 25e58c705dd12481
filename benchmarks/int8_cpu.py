"""ONNX Runtime CPU: INT8 against FP32 for BAT DeiT-S 0.7 and unpruned DeiT-S, and the TensorRT Q/DQ graph beside them.

Per batch size, every variant of both models is loaded in one fresh process and measured interleaved (round-robin,
rotating the order each round, :func:`tdm_edge.bench.run.measure`); ratios are paired by round
(:func:`tdm_edge.bench.stats.paired_ratio`), so a machine shared with other jobs slows numerator and denominator
alike.

Variants (all from :func:`tdm_edge.quantize.calibrate.calibrate`, the MatMul/Gemm inputs of linear layers and
attention products in int8, the merge path in float):

- ``fp32``: the export itself;
- ``cpu-dynamic``: ``--target cpu`` with dynamic quantization (int8 weights per channel, MatMulInteger);
- ``cpu-qoperator``: static QLinearMatMul/QGemm, uint8 activations, per-channel weights;
- ``cpu-qdq-u8``: static QDQ, uint8 activations, per-tensor weights (ONNX Runtime fuses it at load time);
- ``trt-qdq``: ``--target trt``, the explicit int8 symmetric Q/DQ graph meant for TensorRT.

Weights: one set of random weights made trained-like, shared by both models
(:func:`tdm_edge.bench.models.compared_models`). Static variants are calibrated on 16 synthetic scenes (speed does
not depend on the ranges).

    python benchmarks/int8_cpu.py --threads 2 --batches 1 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from tdm_edge.export.onnx_export import export_onnx
from tdm_edge.quantize.calibrate import CPU_MODE, calibrate, load_fp32
from tdm_edge.quantize.data import load_images
from tdm_edge.quantize.recipes import find_recipe

from tdm_edge.bench.backends import RunnerSpec
from tdm_edge.bench.models import compared_models
from tdm_edge.bench.run import cpu_name, in_fresh_process, measure
from tdm_edge.bench.stats import paired_ratio, percentiles

RESULTS = Path(__file__).resolve().parent / "results"

VARIANTS = ("fp32", "cpu-dynamic", "cpu-qoperator", "cpu-qdq-u8", "trt-qdq")


def build(tmp: str, name: str, keep_rate: float, batch: int, calib_images: int,
          variants: tuple[str, ...] = VARIANTS) -> dict[str, str]:
    """Export both models at ``batch`` and quantize them every way; ``{"bat/fp32": path, ...}``."""
    paths = {}
    models = compared_models(name, keep_rate, "bat")
    for key, model in (("unpruned", models["unpruned"]), ("bat", models["pruned"])):
        fp32 = os.path.join(tmp, f"{key}_b{batch}.onnx")
        if not os.path.exists(fp32):
            export_onnx(model, fp32, batch=batch, verify=False)
        paths[f"{key}/fp32"] = fp32
        proto, meta = load_fp32(fp32)
        images = load_images(meta["preprocessing"], synthetic=max(calib_images, batch))
        recipe = find_recipe(None)  # default recipe (min-max): speed does not depend on the ranges
        for variant in (v for v in variants if v != "fp32"):
            out = os.path.join(tmp, f"{key}_b{batch}_{variant}.onnx")
            paths[f"{key}/{variant}"] = out
            if os.path.exists(out):
                continue
            target, mode = variant.split("-", 1)
            calibrate(fp32, out, target=target, recipe=recipe, images=images,
                      cpu_mode=mode if target == "cpu" else CPU_MODE, proto=proto, meta=meta)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deit_small_patch16_224")
    p.add_argument("--keep-rate", type=float, default=0.7)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--calib-images", type=int, default=16)
    p.add_argument("--out", default=str(RESULTS / "int8_cpu.json"))
    p.add_argument("--note", default="")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--per-round", type=int, default=None, help="iterations per model per round (default 8/batch)")
    p.add_argument("--keep", default=None, help="write the models to this folder and reuse those found there")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    import onnxruntime as ort

    result = {
        "benchmark": "ONNX Runtime CPU: INT8 variants vs FP32, BAT and unpruned",
        "note": args.note,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
        "backend": {"onnxruntime": ort.__version__, "provider": "CPUExecutionProvider",
                    "intra_op_threads": args.threads, "inter_op_threads": 1},
        "settings": {"model": args.model, "keep_rate": args.keep_rate, "opset": 17, "warmup": args.warmup,
                     "rounds": args.rounds, "variants": args.variants,
                     "calibration": f"{args.calib_images} synthetic scenes",
                     "weights": "random (pretrained=False) + N(0, 0.02^2) on every parameter (trained_like)"},
        "batches": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        for batch in args.batches:
            paths = build(tmp, args.model, args.keep_rate, batch, args.calib_images, tuple(args.variants))
            per_round = args.per_round or max(2, 8 // batch)
            shape = tuple(load_fp32(paths["bat/fp32"])[1]["preprocessing"]["input_size"])
            specs = {k: RunnerSpec("ort", p, threads=args.threads) for k, p in paths.items()}
            times = in_fresh_process(measure, specs, batch, shape, args.warmup, args.rounds, per_round)
            stats = {k: percentiles([t for rnd in v for t in rnd]) for k, v in times.items()}
            speedup = {k: round(paired_ratio(times[f"{k.split('/')[0]}/fp32"], times[k]), 3)
                       for k in times if not k.endswith("/fp32")}
            result["batches"][str(batch)] = {"per_round": per_round, "per_model": stats,
                                             "speedup_over_fp32": speedup}
            print(f"[b{batch}] " + ", ".join(f"{k} {s['p50_ms']:.1f} ms" for k, s in stats.items()), flush=True)
            print(f"[b{batch}] speed-up over FP32 (paired by round): "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in speedup.items()), flush=True)
            _write(args.out, result)  # after every batch size: a long run keeps what it measured
    print(f"wrote {args.out}")
    return 0


def _write(path: str, result: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
