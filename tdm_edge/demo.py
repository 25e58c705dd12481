"""``make demo``: the pipeline that exists so far, on DeiT-S, offline.

Random weights (no checkpoint is shipped or downloaded); pass ``--checkpoint`` for real ones. Writes to ``out/demo``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

from .errors import UsageError


def _median_ms(runner, feed, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        runner.infer(feed)
        times.append(runner.last_inference_time() * 1e3)
    return statistics.median(times)


def run(model_name: str, keep_rate: float, checkpoint: str | None, out_dir: str, repeats: int = 15) -> None:
    from .export.check import check_file
    from .export.onnx_export import export_onnx
    from .reduce.flops import flops_report
    from .reduce.models import create_model
    from .runners.onnxrt import OnnxRuntimeRunner
    from .runners.pytorch import PyTorchRunner

    import torch

    torch.manual_seed(0)  # random weights are the same on every run
    weights = checkpoint or "random weights, seed 0 (no checkpoint given; nothing is downloaded)"
    print(f"== 1. token reduction: {model_name}, BAT, keep rate {keep_rate}, {weights}")
    model = create_model(model_name, method="bat", keep_rate=keep_rate, checkpoint=checkpoint)
    for stage in model.tdm_schedule.stages:
        print(f"   block {stage.block}: {stage.n_in} tokens -> {stage.n_out} "
              f"(K={stage.keep} attentive, {stage.pairs} pairs merged, {stage.clusters} clusters)")
    print(flops_report(model, name=model_name).table())

    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for label, method in (("bat", "bat"), ("unpruned", "none")):
        print(f"\n== 2. ONNX export ({label}), verified against PyTorch with ONNX Runtime")
        m = model if method == "bat" else create_model(model_name, method="none", checkpoint=checkpoint)
        paths[label] = os.path.join(out_dir, f"{model_name}_{label}.onnx")
        print(export_onnx(m, paths[label], name=model_name).summary())

    print("\n== 3. TensorRT ONNX-parser lint (static check; TensorRT itself is not run here)")
    for trt in ("8.5", "10"):
        findings = check_file(paths["bat"], trt)
        print(f"   TensorRT {trt}: " + ("clean" if not findings else f"{len(findings)} problem(s): {findings[0]}"))

    print(f"\n== 4. the same Runner interface on PyTorch and ONNX Runtime (batch 1, median of {repeats})")
    image = np.random.default_rng(0).standard_normal((1, 3, *model.patch_embed.img_size)).astype(np.float32)
    feed = {"input": image}
    results = {}
    for label, runner in (("pytorch bat", PyTorchRunner(model)),
                          ("onnxruntime bat", OnnxRuntimeRunner(paths["bat"], intra_op_threads=os.cpu_count())),
                          ("onnxruntime unpruned", OnnxRuntimeRunner(paths["unpruned"],
                                                                     intra_op_threads=os.cpu_count()))):
        with runner:
            logits = next(iter(runner.infer(feed).values()))
            results[label] = (_median_ms(runner, feed, repeats), int(logits.argmax()))
        print(f"   {label:<22} {results[label][0]:7.2f} ms   top-1 class {results[label][1]}")
    ratio = results["onnxruntime bat"][0] / results["onnxruntime unpruned"][0]
    print(f"   BAT / unpruned latency on ONNX Runtime CPU: {ratio:.2f} (a quick look; see benchmarks/ for "
          "interleaved, repeated measurements)")
    print("\nStages 3-6 (TensorRT engines, INT8 calibration, camera loop, device benchmarks) come with their issues.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tdm-edge-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--keep-rate", type=float, default=0.7)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", default="out/demo")
    args = parser.parse_args(argv)
    try:
        run(args.model, args.keep_rate, args.checkpoint, args.out)
    except UsageError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
