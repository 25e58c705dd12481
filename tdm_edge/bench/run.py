"""One benchmark run: the compared models measured interleaved, repeated in fresh processes, with provenance.

Method (what ``benchmarks/ort_latency.py`` learned on a shared 2-core VM): every model is warmed up, then each
round runs every model ``per_round`` times, in an order rotated by one each round, so that clock and thermal drift
hit all of them alike; ratios are paired by round; the whole measurement is repeated in ``repeats`` fresh
processes, because the ratio between two models moved by up to +-1.5 % from one process to the next there, and
the median over the processes is reported with its range.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .backends import RunnerSpec, prepare
from ..engine.versions import backend_versions
from .machine import PowerSampler, gpu_name, snapshot, state_text, warnings_for
from .stats import Rounds, compared_pairs, pct, rotation, summarise


@dataclass
class BenchConfig:
    model: str = "deit_small_patch16_224"
    keep_rate: float = 0.7
    method: str = "bat"
    checkpoint: str | None = None
    backend: str = "ort"
    precision: str = "fp32"
    batches: tuple[int, ...] = (1, 8)
    threads: int | None = 2
    warmup: int = 10
    rounds: int = 20
    repeats: int = 3
    per_round: int | None = None  # iterations per model per round (default max(2, 10 // batch))
    extras: tuple[str, ...] = ()
    model_kwargs: dict = field(default_factory=dict)
    plugins: tuple[str, ...] = ()  # trt: plugin libraries to build and run with
    cuda: str = "auto"  # trt: the runner's CUDA binding


def measure(specs: dict[str, RunnerSpec], batch: int, shape: tuple[int, ...], warmup: int, rounds: int,
            per_round: int) -> dict[str, Rounds]:
    """Latencies in ms, ``{model: [[per_round times] for each round]}``; each round runs every model in turn."""
    feed = {"input": np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)}
    runners = {k: spec.make() for k, spec in specs.items()}
    times: dict[str, Rounds] = {k: [] for k in specs}
    for runner in runners.values():
        runner.activate()
    try:
        for runner in runners.values():
            for _ in range(warmup):
                runner.infer(feed)
        for i in range(rounds):
            for key in rotation(list(runners), i):
                times[key].append([])
                for _ in range(per_round):
                    runners[key].infer(feed, check_inputs=False)
                    times[key][-1].append(runners[key].last_inference_time() * 1e3)
    finally:
        for runner in runners.values():
            runner.deactivate()
    return times


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a new (spawned) Python process: new sessions, new memory, new threads."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def environment(cfg: BenchConfig) -> dict:
    """The machine and the versions of what measured (the backend's, torch's that built the models), the GPU."""
    import torch

    from .. import __version__

    versions = {"tdm-edge": __version__, "torch": torch.__version__, **backend_versions(cfg.backend)}
    gpu = gpu_name(cfg.backend)
    return {"machine": {"device": gpu or cpu_name(), "cpu": cpu_name(), "gpu": gpu, "cores": os.cpu_count(),
                        "platform": platform.platform()},
            "versions": versions}


def model_name(name: str, checkpoint: str | None) -> str:
    """The name the result and the log use: a trained checkpoint's own (its record), else ``name``."""
    if checkpoint is not None:
        from ..train.trained import has_record, read_record

        if has_record(checkpoint):  # a trained model brings its own architecture
            return read_record(checkpoint)["model"]
    return name


def measured(specs: dict[str, RunnerSpec], batch: int, shape: tuple[int, ...], cfg: BenchConfig,
             per_round: int) -> tuple[dict[str, Rounds], dict]:
    """One fresh process's times, with the machine's state before and after it and the board power meanwhile."""
    before = snapshot()
    with PowerSampler() as power:
        times = in_fresh_process(measure, specs, batch, shape, cfg.warmup, cfg.rounds, per_round)
    return times, {"before": before, "after": snapshot(), "watts": power.watts}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_bench(cfg: BenchConfig, log=print) -> dict:
    """Measure ``cfg`` and return the result (JSON-ready): per batch, per-model percentiles and throughput, the
    paired ratios, and the GMAC ratio beside them."""
    from ..provenance import RANDOM, weights_record
    from ..reduce.flops import flops_report
    from .models import compared_models

    cfg.model = model_name(cfg.model, cfg.checkpoint)
    log(f"building {cfg.model}: unpruned, {cfg.method} {cfg.keep_rate}, ideal slice{''.join(', ' + e for e in cfg.extras)}")
    models = compared_models(cfg.model, cfg.keep_rate, cfg.method, cfg.checkpoint, cfg.extras, **cfg.model_kwargs)
    macs = {k: flops_report(m, batch=1).gmacs for k, m in models.items()}
    schedule = models["pruned"].tdm_schedule
    state = snapshot()
    log(f"machine: {state_text(state)}")
    for warning in warnings_for(state):
        log(f"warning: {warning}")
    result = {
        "benchmark": f"{cfg.method} vs unpruned vs ideal slice",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        **environment(cfg),
        "settings": {"model": cfg.model, "method": cfg.method, "keep_rate": cfg.keep_rate, "backend": cfg.backend,
                     "precision": cfg.precision, "threads": cfg.threads, "warmup": cfg.warmup,
                     "rounds": cfg.rounds, "repeats": cfg.repeats, "stage_tokens": schedule.stage_tokens,
                     "weights": weights_record(cfg.checkpoint) if cfg.checkpoint else
                     f"{RANDOM} (seed 0) + N(0, 0.02^2) on every parameter (trained-like)"},
        "machine_state": state,
        "gmacs": {k: round(v, 4) for k, v in macs.items()},
        "gmac_ratio": round(macs["pruned"] / macs["unpruned"], 4),
        "batches": {},
    }
    shape = tuple(int(d) for d in (3, *models["pruned"].patch_embed.img_size))
    with tempfile.TemporaryDirectory(prefix="tdm-bench-") as tmp:
        for batch in cfg.batches:
            log(f"batch {batch}: preparing {cfg.backend} {cfg.precision}")
            specs = prepare(models, cfg.backend, cfg.precision, batch, tmp, cfg.threads, log, cfg.plugins, cfg.cuda)
            per_round = cfg.per_round or max(2, 10 // batch)
            repeats, states = [], []
            for i in range(cfg.repeats):
                times, state = measured(specs, batch, shape, cfg, per_round)
                repeats.append(times)
                states.append(state)
                log(f"batch {batch}: process {i + 1}/{cfg.repeats} done ({state_text(state['after'])})")
            entry = {"per_round": per_round, **summarise(repeats, compared_pairs(list(specs)), batch),
                     "machine_states": states, "times_ms": repeats}
            entry["pruned_over_ideal_pct"] = pct(entry["ratios"]["pruned/ideal"])
            result["batches"][str(batch)] = entry
    return result


STATISTICS = ("p50: the median of every timed run over all processes (p90 beside it). Each ratio is given two ways: "
              "`p50s` divides the two p50s shown; `paired` is the median over processes of the median over rounds "
              "of per-round ratios (the models ran back to back in each round, so drift cancels), with its range "
              "over processes. They are different statistics and can differ by a few percent; the paired one is "
              "the measurement.")


def _ratio_cell(entry: dict, pair: str, with_range: bool = False) -> str:
    if pair not in entry["ratios"]:
        return "-"
    cell = f"{entry['p50_ratios'][pair]:.3f}, {entry['ratios'][pair]:.3f}"
    if with_range:
        low, high = entry["ratio_ranges"][pair]
        cell += f" ({low:.3f}..{high:.3f})"
    return cell


def model_label(key: str, settings: dict) -> str:
    """``pruned`` -> ``bat 0.7``; extras by their method; ``ideal`` -> ``ideal slice``."""
    if key == "pruned":
        return f"{settings['method']} {settings['keep_rate']}"
    if key == "ideal":
        return "ideal slice"
    return key if key == "unpruned" else f"{key} {settings['keep_rate']}"


def table(result: dict) -> str:
    """The result as Markdown: one row per batch and model, each ratio as the ratio of the p50s shown and as the
    paired median, the statistics named, the machine's state in the heading."""
    s = result["settings"]
    state = result.get("machine_state")
    lines = [f"{s['model']} {s['method']} {s['keep_rate']} on {s['backend']} {s['precision']} "
             f"({result['machine']['device']}); tokens {' -> '.join(map(str, s['stage_tokens']))}; "
             f"GMAC ratio {result['gmac_ratio']:.3f}" + (f"; {state_text(state)}" if state else ""),
             "", STATISTICS, "",
             f"| batch | model | p50 ms (p90) | img/s | / unpruned: p50s, paired | / ideal slice: p50s, paired "
             f"(range) | {s['method']} / this: p50s, paired |",
             "|---|---|---|---|---|---|---|"]
    for batch, e in result["batches"].items():
        for key, pm in e["per_model"].items():
            lines.append(f"| {batch} | {model_label(key, s)} | {pm['p50_ms']:.2f} ({pm['p90_ms']:.2f}) | "
                         f"{pm['images_per_s']:.1f} | {_ratio_cell(e, f'{key}/unpruned')} | "
                         f"{_ratio_cell(e, f'{key}/ideal', with_range=True)} | {_ratio_cell(e, f'pruned/{key}') if key not in ('unpruned', 'ideal') else '-'} |")
    lines += ["", "Over the ideal slice (paired): " + "; ".join(
        f"batch {batch} {e['pruned_over_ideal_pct']:+.2f} %" for batch, e in result["batches"].items())]
    return "\n".join(lines)
