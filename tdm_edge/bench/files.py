"""``tdm-edge bench --model pruned.onnx --baseline unpruned.onnx``: two exported files measured against each other.

Device side (no torch): each file is an ``.onnx`` (ONNX Runtime) or a TensorRT engine (``.engine``/``.plan``/
``.trt``, with its sidecar); its own metadata gives its name, input size, batch and reduction. Both are measured
the way :mod:`tdm_edge.bench.run` measures built models: warmed up, interleaved rounds in rotated order, repeated
in fresh processes, the pruned/baseline ratio paired by round. There is no ideal slice here (that needs the
weights); ``bench --model NAME`` builds one on the workstation.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import UsageError
from ..metadata import model_metadata
from .backends import RunnerSpec

SUFFIX_BACKENDS = {".onnx": "ort", ".engine": "trt", ".plan": "trt", ".trt": "trt"}
PAIRS = (("pruned", "baseline"),)


def is_model_file(model: Optional[str]) -> bool:
    """Whether ``--model`` names a file to measure (``.onnx`` or an engine) rather than a timm model."""
    return Path(model or "").suffix.lower() in SUFFIX_BACKENDS


def file_backend(path: str, backend: Optional[str]) -> str:
    """The backend a file runs on (``ort`` for .onnx, ``trt`` for an engine); one line if ``backend`` disagrees."""
    own = SUFFIX_BACKENDS.get(Path(path).suffix.lower())
    if own is None:
        raise UsageError(f"cannot bench {path}: expected an .onnx or a TensorRT .engine")
    if backend not in (None, own):
        needs = "an .onnx runs on ONNX Runtime (ort); build an .engine for trt" if own == "ort" else \
            "a TensorRT engine runs only on trt"
        raise UsageError(f"--backend {backend} cannot run {path}: {needs}")
    if not Path(path).is_file():
        raise UsageError(f"model not found: {path}")
    return own


def describe(path: str, meta: dict) -> dict:
    """What the result says about one file: name, reduction, token counts, input, batch, weights."""
    reduction = meta.get("reduction", {})
    return {"file": os.path.basename(path), "name": meta.get("model", {}).get("name"),
            "method": reduction.get("method", "none"), "keep_rate": reduction.get("keep_rate", 1.0),
            "stage_tokens": reduction.get("stage_tokens"), "input_size": meta["preprocessing"]["input_size"],
            "batch": meta.get("onnx", {}).get("batch"), "weights": meta.get("weights")}


def file_batch(described: dict, batch: Optional[int]) -> int:
    """The batch to feed: the file's static batch (``--batch`` must match it), else ``--batch`` or 1."""
    own = described["batch"]
    if own is None:
        return batch or 1
    if batch not in (None, own):
        raise UsageError(f"{described['file']} has a static batch of {own}; --batch {batch} cannot run on it "
                         "(export it with --batch or --dynamic-batch)")
    return own


def plan(pruned: str, baseline: str, backend: Optional[str], batch: Optional[int], threads: Optional[int],
         plugins: Tuple[str, ...] = (), cuda: str = "auto") -> Tuple[Dict[str, RunnerSpec], Dict[str, dict], int,
                                                                   Tuple[int, ...]]:
    """Check both files and return ``(specs, described, batch, input shape [C, H, W])``; one line on a mismatch."""
    described, specs = {}, {}
    for key, path in (("pruned", pruned), ("baseline", baseline)):
        kind = file_backend(path, backend)
        meta = model_metadata(path)
        if "preprocessing" not in meta:
            raise UsageError(f"{path}: its metadata has no preprocessing (not written by tdm-edge export?)")
        described[key] = describe(path, meta)
        specs[key] = RunnerSpec(kind, os.fspath(path), "as built", threads, tuple(plugins), cuda)
    if specs["pruned"].backend != specs["baseline"].backend:
        raise UsageError("the pruned model and the baseline must run on the same backend (both .onnx or both "
                         "engines): a ratio across backends means nothing")
    sizes = {k: list(d["input_size"]) for k, d in described.items()}
    if sizes["pruned"] != sizes["baseline"]:
        raise UsageError(f"the models take different inputs: {pruned} {sizes['pruned']}, {baseline} "
                         f"{sizes['baseline']}")
    batches = {file_batch(d, batch) for d in described.values()}
    if len(batches) > 1:
        raise UsageError(f"the models have different static batches ({', '.join(map(str, sorted(batches)))})")
    return specs, described, batches.pop(), tuple(int(v) for v in sizes["pruned"])


def versions(backend: str) -> dict:
    """tdm-edge's version and what :func:`tdm_edge.engine.versions.backend_versions` records for the backend."""
    from .. import __version__
    from ..engine.versions import backend_versions

    return {"tdm-edge": __version__, **backend_versions(backend)}


def run_file_bench(pruned: str, baseline: str, backend: Optional[str] = None, batch: Optional[int] = None,
                   threads: Optional[int] = 2, warmup: int = 10, rounds: int = 20, repeats: int = 3,
                   per_round: Optional[int] = None, log=print, plugins: Tuple[str, ...] = (),
                   cuda: str = "auto") -> dict:
    """Measure ``pruned`` against ``baseline`` and return the result (JSON-ready)."""
    from .machine import snapshot
    from .run import cpu_name, in_fresh_process, measure
    from .stats import pct, summarise

    from ..provenance import warn_if_random

    specs, described, batch, shape = plan(pruned, baseline, backend, batch, threads, plugins, cuda)
    for key in ("pruned", "baseline"):
        warn_if_random(described[key], "bench")
    kind = specs["pruned"].backend
    per_round = per_round or max(2, 10 // batch)
    result = {
        "benchmark": "pruned file vs baseline file",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"device": cpu_name() if kind == "ort" else "CUDA device 0", "cpu": cpu_name(),
                    "cores": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(kind),
        "settings": {"backend": kind, "threads": threads, "batch": batch, "warmup": warmup, "rounds": rounds,
                     "repeats": repeats, "per_round": per_round},
        "models": described,
        "machine_state": snapshot(),  # load average, CPU governors, a Jetson's power mode and clocks
    }
    times: List[dict] = []
    for i in range(repeats):
        times.append(in_fresh_process(measure, specs, batch, shape, warmup, rounds, per_round))
        log(f"process {i + 1}/{repeats} done")
    entry = summarise(times, PAIRS, batch)
    entry["pruned_over_baseline_pct"] = pct(entry["ratios"]["pruned/baseline"])
    result.update(entry, times_ms=times)
    return result


def file_table(result: dict) -> str:
    """The result as a short Markdown table."""
    from .machine import state_text

    s, models = result["settings"], result["models"]
    rng = result["ratio_ranges"]["pruned/baseline"]
    lines = [f"{models['pruned']['file']} ({models['pruned']['method']} {models['pruned']['keep_rate']}) vs "
             f"{models['baseline']['file']} ({models['baseline']['method']}) on {s['backend']} "
             f"({result['machine']['device']}), batch {s['batch']}"
             + (f"; {state_text(result['machine_state'])}" if result.get("machine_state") else ""), "",
             "| model | p50 ms | p90 ms | p99 ms | img/s | tokens |", "|---|---|---|---|---|---|"]
    for key in ("pruned", "baseline"):
        pm, tokens = result["per_model"][key], models[key]["stage_tokens"]
        lines.append(f"| {key} | {pm['p50_ms']:.2f} | {pm['p90_ms']:.2f} | {pm['p99_ms']:.2f} | "
                     f"{pm['images_per_s']:.1f} | {' -> '.join(map(str, tokens)) if tokens else '?'} |")
    lines.append("")
    lines.append(f"pruned / baseline: {result['ratios']['pruned/baseline']:.3f} (range over {s['repeats']} "
                 f"processes {rng[0]:.3f}..{rng[1]:.3f})")
    return "\n".join(lines)
