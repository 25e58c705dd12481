"""The fused BAT merge kernel on a CUDA GPU: equality, stage time, end to end (needs a GPU; exits 2 without one).

What issue 10 asks to show, measured by ``torch.ops.tdm_edge.bat_merge`` (the plugins/tdm_merge kernel, built on
first use by :mod:`tdm_edge.reduce.fused`) against the decomposed PyTorch stage:

1. equality, DeiT-S stage sizes (197 -> 139 -> 98 -> 69, c = 384): fp32 max abs (target <= 1e-4) and fp16 max abs
   (target <= 1e-2) against the fp32 reference on the same inputs, with the output rows that differ by more than
   the limit counted (in fp16 a near-tie can select differently: those rows are the selection differences);
2. stage time, fused vs decomposed (eager and CUDA-graphed), batch 1 and 64, fp16 (target >= 5x at batch 1);
3. end to end, DeiT-S at keep rate 0.7, fp16 + CUDA graphs: unpruned, the ideal slice (same token counts, free
   selection), BAT decomposed and BAT fused: batch-1 latency (target: fused within 5 % of ideal) and batch-64
   throughput (target >= 1.45x unpruned);
4. the five kernels of one fused stage (torch.profiler, device time per stage call, fp32), to set against the
   per-kernel estimates of benchmarks/kernel_model.py quoted in docs/kernel.md.

Timings: CUDA events around blocks of calls, after warm-up; the variants interleaved round by round (order rotated)
and compared as per-round ratios, medians reported. Weights: random, made trained-like
(tdm_edge.bench.models.compared_models).

    python benchmarks/fused_merge.py                  # writes benchmarks/results/fused_merge_<gpu>.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from tdm_edge.bench.models import compared_models
from tdm_edge.bench.stats import paired_ratio, rotation

RESULTS = Path(__file__).resolve().parent / "results"
DEIT_S = "deit_small_patch16_224"


def deit_small_stages(keep_rate: float = 0.7):
    from tdm_edge.reduce.schedule import build_schedule

    return build_schedule(197, 12, "bat", keep_rate, None, 0.25, 5, None).stages


def stage_inputs(stage, batch: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, stage.n_in, 384, generator=g)
    w = (torch.randn(batch, stage.n_in - 1, generator=g) * 2).softmax(-1)
    return x.to("cuda", dtype), w.to("cuda", dtype)


def decomposed(x, w, stage):
    from tdm_edge.reduce.patch import AttentionOutput, reduce_tokens

    return reduce_tokens(x, AttentionOutput(None, w, None), stage)


def equality(stage, dtype: torch.dtype, limit: float, batch: int = 8) -> dict:
    """Fused (``dtype``) against the fp32 reference on the same (rounded) inputs."""
    from tdm_edge.reduce.fused import fused_stage

    x, w = stage_inputs(stage, batch, dtype)
    got = fused_stage(x, w, stage).float()
    want = decomposed(x.float(), w.float(), stage)
    row_diff = (got - want).abs().amax(dim=-1)  # [B, N']
    return {"n_in": stage.n_in, "dtype": str(dtype).removeprefix("torch."), "batch": batch,
            "max_abs": float(row_diff.max()), "limit": limit, "rows_over_limit": int((row_diff > limit).sum()),
            "rows": row_diff.numel()}


def graphed(fn, *args):
    """``fn(*args)`` captured in a CUDA graph (after warm-up on a side stream); returns the replay callable."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(*args)
    return graph.replay


def time_block(call, iters: int) -> float:
    """Milliseconds per call, one CUDA-event pair around ``iters`` calls."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters


def interleaved(calls: dict, rounds: int, iters: int) -> dict[str, list[list[float]]]:
    """``{name: [[ms per call] per round]}``, every round timing every call once, in a rotated order."""
    names = list(calls)
    for call in calls.values():  # warm-up
        time_block(call, iters)
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in rotation(names, r):
            times[n].append([time_block(calls[n], iters)])
    return times


def stage_times(stage, batch: int, rounds: int, iters: int) -> dict:
    from tdm_edge.reduce.fused import fused_stage

    x, w = stage_inputs(stage, batch, torch.float16)
    calls = {"fused": lambda: fused_stage(x, w, stage), "decomposed": lambda: decomposed(x, w, stage),
             "decomposed_graph": graphed(decomposed, x, w, stage), "fused_graph": graphed(fused_stage, x, w, stage)}
    times = interleaved(calls, rounds, iters)
    med = {n: statistics.median(t[0] for t in v) for n, v in times.items()}
    return {"n_in": stage.n_in, "batch": batch, "median_ms": med,
            "decomposed/fused": paired_ratio(times["decomposed"], times["fused"]),
            "decomposed_graph/fused_graph": paired_ratio(times["decomposed_graph"], times["fused_graph"])}


KERNELS = ("decoupleKernel", "similarityKernel", "rowsKernel", "selectionKernel", "gridPhaseKernel")


def per_kernel_us(totals: list[tuple[str, float]], calls: int) -> dict[str, float]:
    """µs per stage call of each kernel of batMergeKernel.cu, from (kernel name, total device µs) pairs."""
    out = {k: 0.0 for k in KERNELS}
    for name, total in totals:
        for k in KERNELS:
            if k in name:  # mangled names: ..._GLOBAL__N_..similarityKernelIfEEv..
                out[k] += total / calls
    return out


def kernel_profile(stage, batch: int, calls: int = 50) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from tdm_edge.reduce.fused import fused_stage

    x, w = stage_inputs(stage, batch, torch.float32)
    fused_stage(x, w, stage)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fused_stage(x, w, stage)
        torch.cuda.synchronize()
    totals = [(e.key, float(e.device_time_total)) for e in prof.key_averages()]
    return {"n_in": stage.n_in, "batch": batch, "dtype": "float32", "us": per_kernel_us(totals, calls)}


def end_to_end(batch: int, rounds: int, iters: int) -> dict:
    from tdm_edge.reduce.fused import fused_stages

    models = compared_models(DEIT_S, 0.7, "bat")  # unpruned, pruned (BAT), ideal: one set of weights
    models["bat"] = models.pop("pruned")
    x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=torch.float16)
    calls = {}
    with torch.inference_mode():
        for key, model in models.items():
            model = model.half().cuda().eval()
            calls[key] = graphed(model, x)
            if key == "bat":
                with fused_stages():  # the op is in the graph only if it is routed there while capturing
                    calls["bat_fused"] = graphed(model, x)
        times = interleaved(calls, rounds, iters)
    med = {n: statistics.median(t[0] for t in v) for n, v in times.items()}
    return {"batch": batch, "median_ms": med, "images_per_s": {n: batch * 1000 / m for n, m in med.items()},
            "bat_fused/ideal": paired_ratio(times["bat_fused"], times["ideal"]),
            "bat/ideal": paired_ratio(times["bat"], times["ideal"]),
            "unpruned/bat_fused": paired_ratio(times["unpruned"], times["bat_fused"])}


def markdown(result: dict) -> str:
    lines = [f"# Fused BAT merge on {result['device']}", "", f"torch {result['torch']}, CUDA {result['cuda']}; "
             "weights random, trained-like; timings: medians of interleaved rounds.", "",
             "| stage n_in | dtype | max abs | limit | rows over limit |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {e['n_in']} | {e['dtype']} | {e['max_abs']:.3g} | {e['limit']} | "
              f"{e['rows_over_limit']}/{e['rows']} |" for e in result["equality"]]
    lines += ["", "| stage n_in | batch | decomposed / fused (eager) | decomposed / fused (CUDA graphs) |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {s['n_in']} | {s['batch']} | {s['decomposed/fused']:.2f}x | "
              f"{s['decomposed_graph/fused_graph']:.2f}x |" for s in result["stages"]]
    lines += ["", "| batch | BAT fused / ideal | BAT decomposed / ideal | unpruned / BAT fused (throughput) |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {e['batch']} | {e['bat_fused/ideal']:.3f} | {e['bat/ideal']:.3f} | "
              f"{e['unpruned/bat_fused']:.2f}x |" for e in result["end_to_end"]]
    if result.get("kernels"):
        lines += ["", "| stage n_in | batch | " + " | ".join(f"{k} µs" for k in KERNELS) + " | sum µs |",
                  "| --- " * (3 + len(KERNELS)) + "|"]
        lines += [f"| {e['n_in']} | {e['batch']} | " + " | ".join(f"{e['us'][k]:.1f}" for k in KERNELS)
                  + f" | {sum(e['us'].values()):.1f} |" for e in result["kernels"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--iters", type=int, default=50)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("fused_merge: needs a CUDA GPU (none found); nothing measured", file=sys.stderr)
        return 2
    from tdm_edge.reduce.fused import cuda_extension

    if cuda_extension() is None:
        print("fused_merge: the CUDA kernel did not build (see the warning above); nothing measured", file=sys.stderr)
        return 2
    stages = deit_small_stages()
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "settings": vars(args),
              "equality": [equality(s, torch.float32, 1e-4) for s in stages]
              + [equality(s, torch.float16, 1e-2) for s in stages],
              "stages": [stage_times(s, b, args.rounds, args.iters) for b in args.batches for s in stages],
              "end_to_end": [end_to_end(b, args.rounds, max(1, args.iters // b)) for b in args.batches],
              "kernels": [kernel_profile(s, b) for b in args.batches for s in stages]}
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"fused_merge_{result['device'].replace(' ', '_')}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
