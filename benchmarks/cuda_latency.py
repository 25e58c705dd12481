"""GPU latency and throughput: unpruned DeiT vs BAT vs EViT vs the 'ideal' slice, torch-cuda (fp16 + CUDA graphs)
and, with ``--trt``, TensorRT engines, interleaved in one process; plus the correctness checks against ONNX Runtime.

The models are ``ort_latency.benchmark_models`` (trained-like random weights). ``bat/ideal`` is what the decomposed
merge costs on this backend: the baseline the fused kernel must beat. Every runner is timed by the runner interface
(synchronised); rounds rotate the model order so drifts hit all models alike; ratios are paired by round.

    python benchmarks/cuda_latency.py --batches 1 64 [--trt] [--check]

Needs a CUDA GPU (one line and exit 2 without one). Writes benchmarks/results/cuda_latency_<gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def check_against_onnxruntime(models: dict, batch: int, tmp: str) -> dict:
    """fp32 torch-cuda vs ONNX Runtime (max abs diff) and fp16 top-1 agreement, on random + structured images."""
    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.runners import OnnxRuntimeRunner
    from tdm_edge.runners.torch_cuda import TorchCudaRunner

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 224, 224, generator=gen)
    x[batch // 2:] = torch.linspace(-2, 2, 224).view(1, 1, 1, 224)  # structured half: smooth gradients
    feed = {"input": x.numpy()}
    out = {}
    for key, model in models.items():
        path = f"{tmp}/{key}_check.onnx"
        export_onnx(model, path, batch=batch, verify=False)
        with OnnxRuntimeRunner(path) as ort:
            ref = ort.infer(feed)["logits"]
        with TorchCudaRunner(model, fp16=False, batch=batch) as r:
            fp32 = r.infer(feed)["logits"]
        with TorchCudaRunner(model, fp16=True, batch=batch) as r:
            fp16 = r.infer(feed)["logits"]
        out[key] = {"fp32_max_abs_diff": float(np.abs(fp32 - ref).max()),
                    "fp16_top1_agreement": float((fp16.argmax(1) == ref.argmax(1)).mean())}
        print(f"[check] {key}: {out[key]}", flush=True)
    return out


def runners_for(models: dict, batch: int, use_trt: bool, tmp: str) -> dict:
    from tdm_edge.runners.torch_cuda import TorchCudaRunner

    runners = {f"torch/{k}": TorchCudaRunner(m, fp16=True, cuda_graph=True, batch=batch) for k, m in models.items()}
    if use_trt:
        from tdm_edge.engine.build import build_engine
        from tdm_edge.export.onnx_export import export_onnx
        from tdm_edge.runners.tensorrt import TensorRTRunner

        for key, model in models.items():
            onnx_path, engine = f"{tmp}/{key}_b{batch}.onnx", f"{tmp}/{key}_b{batch}.engine"
            export_onnx(model, onnx_path, batch=batch, verify=False)
            print(build_engine(onnx_path, engine, precision="fp16").summary(), flush=True)
            runners[f"trt/{key}"] = TensorRTRunner(engine, cuda_graph=True)
    return runners


def measure(runners: dict, batch: int, warmup: int, rounds: int, per_round: int) -> dict[str, list[list[float]]]:
    feed = {"input": np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)}
    times: dict[str, list[list[float]]] = {k: [] for k in runners}
    for r in runners.values():
        r.activate()
    try:
        for r in runners.values():
            for _ in range(warmup):
                r.infer(feed)
        names = list(runners)
        for i in range(rounds):
            for k in names[i % len(names):] + names[:i % len(names)]:
                times[k].append([])
                for _ in range(per_round):
                    runners[k].infer(feed, check_inputs=False)
                    times[k][-1].append(runners[k].last_inference_time() * 1e3)
    finally:
        for r in runners.values():
            r.deactivate()
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deit_small_patch16_224")
    p.add_argument("--keep-rate", type=float, default=0.7)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--per-round", type=int, default=20)
    p.add_argument("--trt", action="store_true", help="also build and time TensorRT fp16 engines")
    p.add_argument("--check", action="store_true", help="compare torch-cuda with ONNX Runtime first (batch 8)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("cuda_latency: needs a CUDA GPU (torch.cuda.is_available() is False here)", file=sys.stderr)
        return 2
    from ort_latency import PAIRS, RESULTS, benchmark_models, paired_ratio, quartiles  # beside this script

    torch.manual_seed(0)
    gpu = torch.cuda.get_device_name()
    result = {"benchmark": "GPU latency, unpruned vs BAT vs EViT vs ideal slicing", "date": time.strftime("%F %T"),
              "machine": {"gpu": gpu, "compute_capability": ".".join(map(str, torch.cuda.get_device_capability())),
                          "platform": platform.platform()},
              "backend": {"torch": torch.__version__, "cuda": torch.version.cuda, "torch_cuda": "fp16 + CUDA graph"},
              "settings": {**vars(args), "weights": "random + N(0, 0.02^2) on every parameter (trained_like)"},
              "batches": {}}
    models = benchmark_models(args.model, args.keep_rate)
    with tempfile.TemporaryDirectory() as tmp:
        if args.check:
            result["check_vs_onnxruntime"] = check_against_onnxruntime(models, 8, tmp)
        for batch in args.batches:
            runners = runners_for(models, batch, args.trt, tmp)
            times = measure(runners, batch, args.warmup, args.rounds, args.per_round)
            stats = {k: {**quartiles([t for rnd in v for t in rnd]),
                         "images_per_s": round(batch * 1e3 / float(np.median([t for rnd in v for t in rnd])), 1)}
                     for k, v in times.items()}
            ratios = {f"{be}/{a}/{b}": round(paired_ratio(times[f"{be}/{a}"], times[f"{be}/{b}"]), 4)
                      for be in ("torch", "trt") for a, b in PAIRS if f"{be}/{a}" in times}
            result["batches"][str(batch)] = {"per_model": stats, "ratios": ratios}
            print(f"[b{batch}] " + ", ".join(f"{k} {s['median_ms']:.3f} ms" for k, s in stats.items()), flush=True)
            print(f"[b{batch}] ratios: {ratios}", flush=True)
    out = Path(args.out or RESULTS / f"cuda_latency_{re.sub(r'[^A-Za-z0-9]+', '_', gpu).strip('_')}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
