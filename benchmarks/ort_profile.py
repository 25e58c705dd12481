"""Where ONNX Runtime spends the time a token reduction adds: per-node kernel times against a reference model.

Each model runs under ONNX Runtime's profiler (:class:`tdm_edge.runners.OnnxRuntimeRunner` with
``profile_prefix``); every node gets the median of its kernel times over ``--runs`` runs. The nodes of the model are
then matched with those of the reference by signature (operator and input shapes): the transformer's own work, which
both graphs do on the same token counts, cancels, and what is left is what the reduction adds, by operator and by
node. Kernel times include the profiler's own cost of a few microseconds per node, so the sum over many small nodes
overstates them; compare models with ``ort_latency.py``, use this to see where the difference comes from.

    python benchmarks/ort_profile.py bat.onnx ideal.onnx --threads 1
    python benchmarks/ort_profile.py --export deit_small_patch16_224 --keep-rate 0.7   # exports BAT and the ideal
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdm_edge.errors import UsageError


@dataclass(frozen=True)
class NodeTime:
    name: str
    op: str
    inputs: tuple[tuple[int, ...], ...]  # input shapes
    us: float  # median kernel time over the runs, microseconds

    @property
    def signature(self) -> tuple:
        return self.op, self.inputs


def node_times(events: list[dict], skip: int = 0) -> list[NodeTime]:
    """Median kernel time of every node in an ONNX Runtime profile (the parsed JSON trace), in first-seen order.

    ``skip`` drops each node's first runs (the warm-up), which the trace records like any other.
    """
    runs: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[str, tuple]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        name = e["name"][:-len("_kernel_time")]
        args = e.get("args", {})
        shapes = tuple(tuple(next(iter(d.values()))) for d in args.get("input_type_shape", []))
        meta.setdefault(name, (args.get("op_name", "?"), shapes))
        runs[name].append(float(e["dur"]))
    return [NodeTime(n, meta[n][0], meta[n][1], statistics.median(t[skip:] or t)) for n, t in runs.items()]


@dataclass
class Comparison:
    total_us: float  # all nodes of the model
    reference_us: float  # all nodes of the reference
    shared_us: float  # the model's time in nodes whose signature the reference has as often
    shared_reference_us: float  # the reference's time in those same signatures
    extra: list[NodeTime]  # nodes the reference has no counterpart for
    missing: list[NodeTime]  # reference nodes the model has no counterpart for

    @property
    def extra_us(self) -> float:
        return sum(n.us for n in self.extra)

    def by_op(self) -> list[tuple[str, int, float]]:
        """``(operator, extra nodes, extra microseconds)``, most time first."""
        count, time = Counter(), Counter()
        for n in self.extra:
            count[n.op] += 1
            time[n.op] += n.us
        return sorted(((op, count[op], time[op]) for op in count), key=lambda r: (-r[2], r[0]))


def compare(model: list[NodeTime], reference: list[NodeTime]) -> Comparison:
    """Match nodes by signature: within one signature the ``min(count)`` fastest of each side are shared.

    Taking the fastest as the shared ones attributes the slower surplus nodes to the model: for equal signatures the
    surplus is what the reduction added, and its timing is the conservative (larger) one.
    """
    groups: dict[tuple, list[NodeTime]] = defaultdict(list)
    ref_groups: dict[tuple, list[NodeTime]] = defaultdict(list)
    for n in model:
        groups[n.signature].append(n)
    for n in reference:
        ref_groups[n.signature].append(n)
    extra, missing, shared, shared_ref = [], [], 0.0, 0.0
    for sig in set(groups) | set(ref_groups):
        mine = sorted(groups.get(sig, []), key=lambda n: n.us)
        theirs = sorted(ref_groups.get(sig, []), key=lambda n: n.us)
        common = min(len(mine), len(theirs))
        shared += sum(n.us for n in mine[:common])
        shared_ref += sum(n.us for n in theirs[:common])
        extra += mine[common:]
        missing += theirs[common:]
    extra.sort(key=lambda n: -n.us)
    missing.sort(key=lambda n: -n.us)
    return Comparison(sum(n.us for n in model), sum(n.us for n in reference), shared, shared_ref, extra, missing)


def profile(path: str, batch: int = 1, threads: int = 1, runs: int = 100, warmup: int = 10) -> list[NodeTime]:
    """Run ``path`` ``warmup + runs`` times under the profiler; node times over the last ``runs``."""
    from tdm_edge.runners import OnnxRuntimeRunner

    with tempfile.TemporaryDirectory() as tmp:
        runner = OnnxRuntimeRunner(path, intra_op_threads=threads, inter_op_threads=1,
                                   profile_prefix=os.path.join(tmp, "ort"))
        with runner:
            meta = runner.input_metadata()[0]
            shape = [batch if d is None else d for d in meta.shape]
            feed = {meta.name: np.random.default_rng(0).standard_normal(shape, np.float32)}
            for _ in range(warmup + runs):
                runner.infer(feed)
        return node_times(json.loads(Path(runner.profile_path).read_text()), skip=warmup)


def format_report(c: Comparison, top: int = 15) -> str:
    lines = [f"all nodes: model {c.total_us:.0f} us, reference {c.reference_us:.0f} us "
             f"(difference {c.total_us - c.reference_us:+.0f} us)",
             f"shared work (same signatures): model {c.shared_us:.0f} us, reference {c.shared_reference_us:.0f} us",
             f"added by the model: {len(c.extra)} nodes, {c.extra_us:.0f} us; "
             f"reference-only: {len(c.missing)} nodes, {sum(n.us for n in c.missing):.0f} us", "",
             "| operator | extra nodes | us |", "| --- | --- | --- |"]
    lines += [f"| {op} | {count} | {us:.0f} |" for op, count, us in c.by_op()]
    lines += ["", f"slowest {min(top, len(c.extra))} added nodes:", "| us | operator | node | input shapes |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {n.us:.1f} | {n.op} | {n.name} | {list(map(list, n.inputs))} |" for n in c.extra[:top]]
    return "\n".join(lines)


def export_pair(model_name: str, keep_rate: float, batch: int, out_dir: str) -> tuple[str, str]:
    """Export BAT and the ideal (slicing) model with trained-like weights, as ``ort_latency.py`` does."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ort_latency import benchmark_models

    import torch
    from tdm_edge.export.onnx_export import export_onnx

    torch.manual_seed(0)
    paths = []
    for key, model in benchmark_models(model_name, keep_rate, ("bat", "ideal")).items():
        paths.append(os.path.join(out_dir, f"{key}_b{batch}.onnx"))
        export_onnx(model, paths[-1], batch=batch, verify=False)
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="ONNX model to profile")
    p.add_argument("reference", nargs="?", help="ONNX model to compare with (e.g. the ideal slicing model)")
    p.add_argument("--export", metavar="NAME", help="export BAT and the ideal of this timm model and compare them")
    p.add_argument("--keep-rate", type=float, default=0.7)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: clean per-node times)")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    if bool(args.export) == bool(args.model and args.reference):
        p.error("give MODEL and REFERENCE, or --export NAME")
    with tempfile.TemporaryDirectory() as tmp:
        model, reference = (export_pair(args.export, args.keep_rate, args.batch, tmp) if args.export
                            else (args.model, args.reference))
        for path in (model, reference):
            if not os.path.isfile(path):
                p.error(f"no such file: {path}")
        try:
            c = compare(profile(model, args.batch, args.threads, args.runs),
                        profile(reference, args.batch, args.threads, args.runs))
        except UsageError as err:  # e.g. a file ONNX Runtime cannot load
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(f"{os.path.basename(model)} against {os.path.basename(reference)}, batch {args.batch}, "
          f"{args.threads} thread(s), median of {args.runs} runs per node\n")
    print(format_report(c, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
