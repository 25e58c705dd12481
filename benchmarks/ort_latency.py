"""ONNX Runtime CPU latency: unpruned DeiT vs BAT vs the 'ideal' (zero-cost selection) at the same token counts.

Four models, measured interleaved (round-robin blocks of iterations, rotating the order each round) so that clock
and thermal drift hit all of them alike, and the whole measurement repeated in ``--repeats`` fresh processes: on this
shared 2-core VM the ratio between two models moved by up to +-1.5 % from one process to the next (the same model
in four sessions of one process agreed within 0.4 %), so one process is not enough to resolve a 3 % target.

- ``unpruned``: the model with ``method="none"``;
- ``bat``: BAT at ``--keep-rate``;
- ``evit``: EViT at the same token counts (top-K by class attention plus one fused token): what a selection
  without any merging costs on this backend, for scale;
- ``ideal``: the BAT schedule with every stage replaced by ``method="slice"`` (keep the first tokens): the same
  token counts with a free selection, the floor any selection method can reach on this backend.

All are exported with :func:`tdm_edge.export.onnx_export.export_onnx` (static batch, opset 17, simplified, verified)
and run with :class:`tdm_edge.runners.OnnxRuntimeRunner`. Random weights, made trained-like
(:func:`trained_like`): latency does not depend on their values, but the graph does depend on their structure.

    python benchmarks/ort_latency.py --threads 2 --batches 1 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from tdm_edge.export.onnx_export import export_onnx
from tdm_edge.reduce.models import create_model
from tdm_edge.runners import OnnxRuntimeRunner

RESULTS = Path(__file__).resolve().parent / "results"


def ideal_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (patched) with every stage's method set to ``slice``: same counts, selection for free."""
    schedule = model.tdm_schedule
    stages = tuple(dataclasses.replace(s, method="slice") for s in schedule.stages)
    for blk in model.blocks:
        if blk.tdm_stage is not None:
            blk.tdm_stage = dataclasses.replace(blk.tdm_stage, method="slice")
    model.tdm_schedule = dataclasses.replace(schedule, stages=stages)
    return model


def trained_like(model: torch.nn.Module, seed: int = 1, scale: float = 0.02) -> torch.nn.Module:
    """Add ``N(0, scale^2)`` noise to every parameter, in place.

    timm initialises LayerNorm scales to exactly 1 and biases to exactly 0; the exporter and onnx-simplifier then
    drop those Mul/Add nodes, which no trained checkpoint allows, and ONNX Runtime's LayerNorm fusion does not
    fire on the bare pattern (measured: 25 unfused LayerNorms of 7 nodes each). Perturbed weights give the graph a
    trained model has.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=gen))
    return model


MODELS = ("unpruned", "bat", "evit", "ideal")


def benchmark_models(name: str, keep_rate: float, keys: tuple[str, ...] = MODELS) -> dict[str, torch.nn.Module]:
    """The compared models (see the module docstring) with trained-like weights, in the order of ``keys``."""
    models = {}
    for key in keys:
        method = {"unpruned": "none", "ideal": "bat"}.get(key, key)
        model = create_model(name, method=method, keep_rate=keep_rate)
        if key == "ideal":
            ideal_model(model)
        models[key] = trained_like(model)  # LayerNorm scales != 1 and biases != 0, as in a trained checkpoint
    return models


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def quartiles(ms: list[float]) -> dict:
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return {"median_ms": round(float(med), 3), "q1_ms": round(float(q1), 3), "q3_ms": round(float(q3), 3),
            "iqr_ms": round(float(q3 - q1), 3), "mean_ms": round(statistics.fmean(ms), 3), "n": len(ms)}


def measure(paths: dict[str, str], batch: int, shape: tuple[int, ...], threads: int, warmup: int, rounds: int,
            per_round: int) -> dict[str, list[list[float]]]:
    """Latencies in ms, ``{model: [[per_round times] for each round]}``; each round runs every model in turn."""
    feed = {"input": np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)}
    runners = {k: OnnxRuntimeRunner(p, intra_op_threads=threads, inter_op_threads=1) for k, p in paths.items()}
    times: dict[str, list[list[float]]] = {k: [] for k in paths}
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


def paired_ratio(num: list[list[float]], den: list[list[float]]) -> float:
    """Median over rounds of (median of ``num`` in the round / median of ``den`` in the same round).

    The two models ran back to back in each round, so drifts of the machine's speed between rounds cancel.
    """
    return float(np.median([np.median(a) / np.median(b) for a, b in zip(num, den)]))


PAIRS = (("bat", "ideal"), ("evit", "ideal"), ("bat", "unpruned"), ("evit", "unpruned"), ("ideal", "unpruned"))


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a new (spawned) Python process: new sessions, new memory, new threads."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def summarise(repeats: list[dict[str, list[list[float]]]]) -> dict:
    """Per-model quartiles over all samples, and each ratio per repeat (paired by round) with its median."""
    models = list(repeats[0])
    stats = {k: quartiles([t for rep in repeats for rnd in rep[k] for t in rnd]) for k in models}
    per_repeat = {f"{a}/{b}": [round(paired_ratio(rep[a], rep[b]), 4) for rep in repeats] for a, b in PAIRS}
    ratios = {k: round(float(np.median(v)), 4) for k, v in per_repeat.items()}
    pct = lambda ratio: round(100 * (ratio - 1), 2)  # noqa: E731
    return {"per_model": stats, "ratios_per_repeat": per_repeat, "ratios": ratios,
            "bat_over_ideal_pct": pct(ratios["bat/ideal"]),
            "bat_over_ideal_pct_range": [pct(min(per_repeat["bat/ideal"])), pct(max(per_repeat["bat/ideal"]))]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deit_small_patch16_224")
    p.add_argument("--keep-rate", type=float, default=0.7)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20, help="round-robin rounds per repeat (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="measurements, each in a fresh process (default 5)")
    p.add_argument("--per-round", type=int, default=None, help="iterations per model per round (default 10/batch)")
    p.add_argument("--out", default=str(RESULTS / "ort_cpu_latency.json"))
    p.add_argument("--label", default="", help="note stored with the result (e.g. 'before merge fix')")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    import onnxruntime as ort

    result = {
        "benchmark": "ONNX Runtime CPU latency, unpruned vs BAT vs ideal slicing",
        "label": args.label,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
        "backend": {"onnxruntime": ort.__version__, "provider": "CPUExecutionProvider", "intra_op_threads":
                    args.threads, "inter_op_threads": 1, "torch": torch.__version__},
        "settings": {"model": args.model, "keep_rate": args.keep_rate, "opset": 17, "warmup": args.warmup,
                     "rounds": args.rounds, "repeats": args.repeats,
                     "weights": "random (pretrained=False) + N(0, 0.02^2) on every parameter (trained_like)"},
        "batches": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:
            models = benchmark_models(args.model, args.keep_rate)
            paths, tokens = {}, {}
            for key, model in models.items():
                paths[key] = os.path.join(tmp, f"{key}_b{batch}.onnx")
                report = export_onnx(model, paths[key], batch=batch, verify=key != "unpruned" or batch == 1,
                                     verify_threads=args.threads)
                tokens[key] = report.metadata["reduction"]["block_tokens"]
                print(f"[b{batch}] {key}: {report.nodes_after} nodes; verification: "
                      f"{report.verification.summary() if report.verification else 'skipped'}", flush=True)
            per_round = args.per_round or max(2, 10 // batch)
            shape = tuple(report.metadata["preprocessing"]["input_size"])
            repeats = [in_fresh_process(measure, paths, batch, shape, args.threads, args.warmup, args.rounds,
                                        per_round) for _ in range(args.repeats)]
            entry = {"block_tokens": tokens, "per_round": per_round, **summarise(repeats)}
            result["batches"][str(batch)] = entry
            print(f"[b{batch}] " + ", ".join(f"{k} {s['median_ms']:.2f} ms (IQR {s['iqr_ms']:.2f})"
                                            for k, s in entry["per_model"].items())
                  + f"; bat/unpruned {entry['ratios']['bat/unpruned']:.3f}, ideal/unpruned "
                  f"{entry['ratios']['ideal/unpruned']:.3f}, BAT over ideal {entry['bat_over_ideal_pct']:+.2f}% "
                  f"(median of {args.repeats} processes, range {entry['bat_over_ideal_pct_range'][0]:+.2f}.."
                  f"{entry['bat_over_ideal_pct_range'][1]:+.2f}%)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
