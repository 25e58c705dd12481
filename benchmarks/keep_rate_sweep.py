"""Latency against keep rate on ONNX Runtime CPU: BAT, EViT and the ideal slice, DeiT-T and DeiT-S.

For each model, every (method, keep rate) is built from one set of trained-like random weights, exported, and all
of them are measured interleaved at batch 1 in one fresh process (:func:`tdm_edge.bench.run.measure`), so the
curves share the machine's state. Writes ``results/keep_rate_sweep.{json,md,png}``.

    python benchmarks/keep_rate_sweep.py --models deit_tiny_patch16_224 deit_small_patch16_224
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from tdm_edge.bench.backends import prepare
from tdm_edge.bench.models import ideal_model, trained_like
from tdm_edge.bench.plot import plot_ladder
from tdm_edge.bench.run import cpu_name, in_fresh_process, measure
from tdm_edge.bench.stats import percentiles
from tdm_edge.reduce.flops import flops_report
from tdm_edge.reduce.models import create_model

RESULTS = Path(__file__).resolve().parent / "results"


def sweep(name: str, rates: list[float], threads: int, rounds: int) -> list[dict]:
    torch.manual_seed(0)
    base = trained_like(create_model(name, method="none"))
    models = {("unpruned", 1.0): base}
    for rate in rates:
        for series in ("bat", "evit", "ideal"):
            model = create_model(name, method="bat" if series == "ideal" else series, keep_rate=rate)
            model.load_state_dict(base.state_dict())
            models[(series, rate)] = ideal_model(model) if series == "ideal" else model
    keys = {f"{s}_{r}": (s, r) for s, r in models}
    with tempfile.TemporaryDirectory() as tmp:
        specs = prepare({k: models[v] for k, v in keys.items()}, "ort", "fp32", 1, tmp, threads,
                        log=lambda m: print(m, flush=True))
        times = in_fresh_process(measure, specs, 1, (3, 224, 224), 5, rounds, 5)
    rows = []
    for key, (series, rate) in keys.items():
        stats = percentiles([t for rnd in times[key] for t in rnd])
        rows.append({"model": name, "series": series, "keep_rate": rate, "fps": round(1e3 / stats["p50_ms"], 2),
                     "gmacs": round(flops_report(models[(series, rate)]).gmacs, 4), **stats})
    unpruned = next(r for r in rows if r["series"] == "unpruned")
    for series in ("bat", "evit", "ideal"):  # the unpruned model is every curve's keep rate 1.0
        rows.append({**unpruned, "series": series})
    return [r for r in rows if r["series"] != "unpruned"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["deit_tiny_patch16_224", "deit_small_patch16_224"])
    p.add_argument("--rates", type=float, nargs="+", default=[0.9, 0.8, 0.7, 0.6, 0.5])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--label", default="")
    args = p.parse_args(argv)
    import onnxruntime

    result = {"benchmark": "latency vs keep rate, ONNX Runtime CPU, batch 1, interleaved in one process",
              "label": args.label, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu_name(),
              "onnxruntime": onnxruntime.__version__, "threads": args.threads, "rounds": args.rounds,
              "weights": "random + N(0, 0.02^2) (trained-like)", "rows": []}
    md = [f"# Latency vs keep rate (ONNX Runtime {onnxruntime.__version__} CPU, {args.threads} threads, batch 1)",
          "", f"{cpu_name()}; {result['date']}; {args.label}", ""]
    for name in args.models:
        rows = sweep(name, args.rates, args.threads, args.rounds)
        result["rows"] += rows
        plot_ladder(rows, RESULTS / f"keep_rate_sweep_{name}.png", f"{name}, ORT CPU {args.threads} threads")
        md += [f"## {name}", "", f"![{name}](keep_rate_sweep_{name}.png)", "",
               "| keep rate | BAT p50 ms | EViT p50 ms | ideal p50 ms | BAT GMACs | BAT over ideal |", "|---|---|---|---|---|---|"]
        for rate in [1.0, *args.rates]:
            r = {row["series"]: row for row in rows if row["keep_rate"] == rate}
            md.append(f"| {rate} | {r['bat']['p50_ms']:.2f} | {r['evit']['p50_ms']:.2f} | {r['ideal']['p50_ms']:.2f} | "
                      f"{r['bat']['gmacs']:.3f} | {100 * (r['bat']['p50_ms'] / r['ideal']['p50_ms'] - 1):+.1f} % |")
        md.append("")
    (RESULTS / "keep_rate_sweep.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "keep_rate_sweep.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
