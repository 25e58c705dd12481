"""``tdm-edge tune``: the highest keep rate that meets a target frame rate on this device.

Every keep rate of a ladder is built from the same weights, prepared for the backend (exported, built), and
measured at batch 1 interleaved in one fresh process; the chosen model is then exported (and verified) to the
output path. The unpruned model (keep rate 1.0) is always measured beside the ladder: a pruned model that is not
faster than it is never recommended (on a small model the merge's fixed cost can outweigh the work it saves).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from ..errors import UsageError
from .run import in_fresh_process, measure
from .stats import percentiles

DEFAULT_LADDER = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


@dataclass(frozen=True)
class Rung:
    keep_rate: float
    stage_tokens: list[int]
    gmacs: float
    p50_ms: float
    p90_ms: float

    @property
    def fps(self) -> float:
        return 1e3 / self.p50_ms


def slower_than_unpruned(rungs: list[Rung]) -> list[Rung]:
    """The pruned rungs whose p50 is not below the unpruned rung's (keep rate 1.0); none without that rung."""
    unpruned = [r for r in rungs if r.keep_rate >= 1.0]
    if not unpruned:
        return []
    return [r for r in rungs if r.keep_rate < 1.0 and r.p50_ms >= unpruned[0].p50_ms]


def pick(rungs: list[Rung], target_fps: float) -> Rung | None:
    """The rung with the highest keep rate whose p50 frame rate meets ``target_fps``, never a pruned rung that is
    slower than unpruned; None if none does."""
    refused = slower_than_unpruned(rungs)
    meeting = [r for r in rungs if r.fps >= target_fps and r not in refused]
    return max(meeting, key=lambda r: r.keep_rate) if meeting else None


def ladder_table(rungs: list[Rung], target_fps: float, chosen: Rung | None) -> str:
    refused = slower_than_unpruned(rungs)
    lines = ["| keep rate | tokens per stage | GMACs | p50 ms | p90 ms | FPS (p50) | meets target |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rungs, key=lambda r: -r.keep_rate):
        mark = "**chosen**" if r is chosen else "refused: not faster than unpruned" if r in refused else (
            "yes" if r.fps >= target_fps else "no")
        lines.append(f"| {r.keep_rate:.2f} | {' -> '.join(map(str, r.stage_tokens))} | {r.gmacs:.3f} | "
                     f"{r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.fps:.1f} | {mark} |")
    return "\n".join(lines)


def measure_ladder(name: str, keep_rates: tuple[float, ...], backend: str = "ort", precision: str = "fp32",
                   method: str = "bat", checkpoint: str | None = None, threads: int | None = 2, rounds: int = 10,
                   warmup: int = 5, log=print, plugins: tuple[str, ...] = (), cuda: str = "auto",
                   **model_kwargs) -> tuple[list[Rung], dict]:
    """Measure every keep rate; returns the rungs and the models (``{keep_rate: model}``) they were built from."""
    import torch

    from ..provenance import record_weights, weights_of
    from ..reduce.flops import flops_report
    from .backends import prepare
    from .models import model_builder, trained_like

    keep_rates = tuple(keep_rates) if 1.0 in keep_rates else (1.0, *keep_rates)  # the reference is always measured
    torch.manual_seed(0)
    build = model_builder(name, checkpoint, **model_kwargs)  # a trained tdm-edge checkpoint brings its architecture
    base = build("none", None, checkpoint)
    if checkpoint is None:
        trained_like(base)
    models = {}
    for rate in keep_rates:
        model = base if rate >= 1.0 else build(method, rate, None)
        model.load_state_dict(base.state_dict())
        record_weights(model, weights_of(base))  # the chosen model's export names the weights it really has
        models[rate] = model.eval()
    with tempfile.TemporaryDirectory(prefix="tdm-tune-") as tmp:
        specs = prepare({f"keep{r}": m for r, m in models.items()}, backend, precision, 1, tmp, threads, log,
                        plugins, cuda)
        shape = (3, *base.patch_embed.img_size)
        log(f"measuring {len(specs)} keep rates interleaved ({rounds} rounds, batch 1)")
        times = in_fresh_process(measure, specs, 1, shape, warmup, rounds, 5)
    rungs = []
    for rate, model in models.items():
        stats = percentiles([t for rnd in times[f"keep{rate}"] for t in rnd])
        report = flops_report(model, batch=1)
        rungs.append(Rung(rate, report.stage_tokens, report.gmacs, stats["p50_ms"], stats["p90_ms"]))
    return rungs, models


def write_choice(model, output: str, backend: str, precision: str, name: str, log=print,
                 labels: list[str] | None = None, plugins: tuple[str, ...] = ()) -> str:
    """Export the chosen model to ``output`` (.onnx, verified), and build the engine for ``backend == "trt"``."""
    from ..export.onnx_export import export_onnx

    if backend == "trt":
        if not output.endswith(".engine"):
            raise UsageError(f"with --backend trt the output is an engine: {output} should end in .engine")
        onnx_path = output[: -len(".engine")] + ".onnx"
        log(export_onnx(model, onnx_path, name=name, labels=labels).summary())
        from ..engine.build import build_engine

        build_engine(onnx_path, output, precision=precision, plugins=plugins)
        return output
    if not output.endswith(".onnx"):
        raise UsageError(f"the output is an ONNX model: {output} should end in .onnx")
    log(export_onnx(model, output, name=name, labels=labels).summary())
    return output
