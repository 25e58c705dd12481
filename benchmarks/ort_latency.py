"""ONNX Runtime CPU latency: unpruned DeiT vs BAT vs the 'ideal' (zero-cost selection) at the same token counts.

Three models, measured interleaved in one run (round-robin blocks of iterations, rotating the order each round)
so that clock and thermal drift hit all three alike:

- ``unpruned``: the model with ``method="none"``;
- ``bat``: BAT at ``--keep-rate``;
- ``ideal``: the BAT schedule with every stage replaced by ``method="slice"`` (keep the first tokens): the same
  token counts with a free selection, the floor any selection method can reach on this backend.

All three are exported with :func:`tdm_edge.export.export_onnx` (static batch, opset 17, simplified, verified)
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
from pathlib import Path

import numpy as np
import torch

from tdm_edge.export import export_onnx
from tdm_edge.models import create_model
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


def paired_ratio(num: list[list[float]], den: list[list[float]], seed: int = 0) -> dict:
    """Median over rounds of (median of ``num`` in the round / median of ``den`` in the same round).

    The two models ran back to back in each round, so drifts of the machine's speed between rounds cancel in
    the ratio; a bootstrap over rounds gives a 95 % interval for the median ratio.
    """
    ratios = np.array([np.median(a) / np.median(b) for a, b in zip(num, den)])  # [rounds]
    boot = np.random.default_rng(seed).choice(ratios, size=(2000, len(ratios)), replace=True)
    lo, hi = np.percentile(np.median(boot, axis=1), [2.5, 97.5])
    q1, q3 = np.percentile(ratios, [25, 75])
    return {"median": round(float(np.median(ratios)), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "q1": round(float(q1), 4), "q3": round(float(q3), 4), "rounds": len(ratios)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deit_small_patch16_224")
    p.add_argument("--keep-rate", type=float, default=0.7)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20, help="round-robin rounds (default 20)")
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
                     "rounds": args.rounds,
                     "weights": "random (pretrained=False) + N(0, 0.02^2) on every parameter (trained_like)"},
        "batches": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:
            models = {"unpruned": create_model(args.model, method="none"),
                      "bat": create_model(args.model, method="bat", keep_rate=args.keep_rate)}
            models["ideal"] = ideal_model(create_model(args.model, method="bat", keep_rate=args.keep_rate))
            for model in models.values():
                trained_like(model)  # the same noise for all three: same weights, same graph structure
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
            times = measure(paths, batch, shape, args.threads, args.warmup, args.rounds, per_round)
            stats = {k: quartiles([t for rnd in v for t in rnd]) for k, v in times.items()}
            med = {k: s["median_ms"] for k, s in stats.items()}
            paired = paired_ratio(times["bat"], times["ideal"])
            entry = {"per_model": stats, "block_tokens": tokens, "per_round": per_round,
                     "ratio_vs_unpruned": {k: round(med[k] / med["unpruned"], 4) for k in ("bat", "ideal")},
                     "bat_over_ideal_pct": round(100 * (med["bat"] / med["ideal"] - 1), 2),
                     "bat_over_ideal_paired": paired,
                     "bat_over_ideal_paired_pct": round(100 * (paired["median"] - 1), 2)}
            result["batches"][str(batch)] = entry
            print(f"[b{batch}] " + ", ".join(f"{k} {s['median_ms']:.2f} ms (IQR {s['iqr_ms']:.2f})"
                                            for k, s in stats.items())
                  + f"; bat/unpruned {entry['ratio_vs_unpruned']['bat']:.3f}, ideal/unpruned "
                  f"{entry['ratio_vs_unpruned']['ideal']:.3f}, BAT over ideal {entry['bat_over_ideal_pct']:+.2f}% "
                  f"(paired per round: {entry['bat_over_ideal_paired_pct']:+.2f}%, 95% CI "
                  f"{100 * (paired['ci95'][0] - 1):+.2f}..{100 * (paired['ci95'][1] - 1):+.2f}%)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
