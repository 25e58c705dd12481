"""ONNX Runtime CPU latency: unpruned DeiT vs BAT vs the 'ideal' (zero-cost selection) at the same token counts.

A thin caller of :mod:`tdm_edge.bench` (the same code as ``tdm-edge bench --backend ort``), with EViT measured
beside BAT for scale and the result written to ``benchmarks/results/ort_cpu_latency.{json,md}``:

- ``unpruned``: the model with ``method="none"``;
- ``pruned``: BAT at ``--keep-rate``;
- ``evit``: EViT at the same token counts: what a selection without any merging costs on this backend;
- ``ideal``: the BAT schedule with every stage replaced by ``method="slice"``: the floor any selection reaches.

All share one set of random weights, made trained-like (:func:`tdm_edge.bench.models.trained_like`): latency does
not depend on their values, but the graph does depend on their structure. Method: :mod:`tdm_edge.bench.run`.

    python benchmarks/ort_latency.py --threads 2 --batches 1 8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tdm_edge.bench.models import compared_models, ideal_model, trained_like  # noqa: F401  (used by ort_profile)
from tdm_edge.bench.run import BenchConfig, run_bench, table

RESULTS = Path(__file__).resolve().parent / "results"


def benchmark_models(name: str, keep_rate: float, keys: tuple[str, ...] = ("unpruned", "bat", "evit", "ideal")):
    """The compared models under this script's names (``bat`` for the pruned one), in the order of ``keys``."""
    models = compared_models(name, keep_rate, "bat", extras=("evit",))
    models["bat"] = models.pop("pruned")
    return {k: models[k] for k in keys}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deit_small_patch16_224")
    p.add_argument("--keep-rate", type=float, default=0.7)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--rounds", type=int, default=20, help="round-robin rounds per repeat (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="measurements, each in a fresh process (default 5)")
    p.add_argument("--out", default=str(RESULTS / "ort_cpu_latency.json"))
    p.add_argument("--label", default="", help="note stored with the result (e.g. 'loaded machine')")
    args = p.parse_args(argv)
    cfg = BenchConfig(model=args.model, keep_rate=args.keep_rate, batches=tuple(args.batches), threads=args.threads,
                      rounds=args.rounds, repeats=args.repeats, extras=("evit",))
    result = {"label": args.label, **run_bench(cfg, log=lambda m: print(m, flush=True))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
