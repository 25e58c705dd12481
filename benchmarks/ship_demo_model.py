"""Copy a trained model into tdm_edge/assets/demo/ with its labels and a model card measured on fresh data.

Usage: PYTHONPATH=. python benchmarks/ship_demo_model.py RUN/model.safetensors --held-out DIR --held-out-seed S \
           --recipe "..." [--calibration TRAIN_DIR]
The held-out folder must be generated with a seed no training or validation run used. With ``--calibration`` (training
images) the card also gets INT8 figures: the model exported, calibrated for the CPU and for TensorRT (two recipes)
and each file scored on the held-out set by ``tdm-edge eval --onnx`` (ONNX Runtime CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import tempfile
from pathlib import Path

import torch

from tdm_edge import __version__
from tdm_edge.cli import main as cli
from tdm_edge.train.evaluate import format_eval, run_eval, run_eval_onnx
from tdm_edge.train.trained import DEMO_DIR, read_record


INT8_VARIANTS = [  # (label, calibrate arguments)
    ("CPU INT8 (`--target cpu`, dynamic)", ["--target", "cpu"]),
    ("TensorRT Q/DQ, recipe `default` (linear layers and attention products in int8)",
     ["--target", "trt", "--recipe", "calibration/default.json"]),
    ("TensorRT Q/DQ, the model's own recipe (what `tdm-edge calibrate` picks for it)", ["--target", "trt"]),
]


def int8_figures(model: str, held_out: str, calibration: str, fp32_top1: float) -> str:
    """Markdown: held-out top-1 of the FP32 export and of each INT8 variant, all run on ONNX Runtime's CPU."""
    rows = ["| file | int8 MatMul/Gemm | held-out top-1 | vs PyTorch FP32 |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="tdm-edge-ship-") as tmp:
        fp32 = str(Path(tmp) / "model.onnx")
        if cli(["export", "--checkpoint", model, "-o", fp32, "--batch", "1"]) != 0:
            raise SystemExit("export failed")
        top1 = run_eval_onnx(fp32, held_out, threads=1)["top1"]
        rows.append(f"| FP32 ONNX (`tdm-edge export`) | 0 | {top1:.2f} % | {top1 - fp32_top1:+.2f} |")
        for i, (label, extra) in enumerate(INT8_VARIANTS):
            out = str(Path(tmp) / f"int8_{i}.onnx")
            if cli(["calibrate", fp32, "--images", calibration, *extra, "-o", out]) != 0:
                raise SystemExit(f"calibrate {extra} failed")
            meta = json.loads(Path(out).with_suffix(".json").read_text())
            top1 = run_eval_onnx(out, held_out, threads=1)["top1"]
            label = label.replace("the model's own recipe", f"recipe `{meta['quantization']['recipe']['name']}`")
            rows.append(f"| {label} | {len(meta['quantization']['quantized_nodes'])} | {top1:.2f} % | "
                        f"{top1 - fp32_top1:+.2f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--held-out-seed", required=True, type=int)
    parser.add_argument("--recipe", required=True, help="the commands that made the model (markdown)")
    parser.add_argument("--notes", default="")
    parser.add_argument("--calibration", default=None, help="training images for INT8 calibration (an ImageFolder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = read_record(args.model)
    result = run_eval(args.model, args.held_out)
    int8 = "no figures yet."
    if args.calibration:
        int8 = ("calibrated on 512 of the training images, scored on the same held-out set "
                "with `tdm-edge eval --onnx` on ONNX Runtime's CPU (a Q/DQ file there runs ONNX Runtime's int8 "
                "arithmetic, an estimate of a TensorRT engine, not a TensorRT result):\n\n"
                + int8_figures(args.model, args.held_out, args.calibration, result["top1"]) + "\n")
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    target = DEMO_DIR / "model.safetensors"
    shutil.copyfile(args.model, target)
    (DEMO_DIR / "labels.txt").write_text("\n".join(record["labels"]) + "\n")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    arch = ", ".join(f"{k} {v}" for k, v in record["arch"].items())
    card = f"""# Demo model: {record['model']}, BAT keep {record['reduction']['keep_rate']}, procedural shapes

- **File**: `model.safetensors` ({target.stat().st_size / 1e6:.2f} MB, sha256 `{digest[:16]}...`); labels in
  `labels.txt` and in the file's metadata (key `tdm_edge`: architecture, reduction, labels, preprocessing).
- **Architecture**: timm VisionTransformer, {arch}. DeiT's token layout (196 patches + CLS = 197 tokens) but far
  narrower and shallower than DeiT-Tiny: it was trained on a shared 2-core CPU.
- **Reduction**: {json.dumps(record['reduction'])}; tokens {' -> '.join(map(str, result['stage_tokens']))}.
- **GMACs** (the paper's counting): {result['gmacs']:.4f} per image (unpruned {result['unpruned_gmacs']:.4f}).
- **Data**: `tdm-edge make-dataset` defaults: 6 classes ({', '.join(record['labels'])}), 56 px, one shape per
  image on a cluttered textured background.
- **Held-out accuracy** (a freshly generated set, seed {args.held_out_seed}, never used in training or validation,
  `tdm-edge make-dataset H --per-class {result['images'] // len(record['labels'])} --seed {args.held_out_seed}`,
  `tdm-edge eval --data H`):

```
{format_eval(result)}
```

- **Recipe**:

{args.recipe}

- **INT8**: {int8}
- **Measured on**: tdm-edge {__version__}, torch {torch.__version__}, {platform.machine()} CPU (shared, loaded).

{args.notes}
"""
    (DEMO_DIR / "MODEL_CARD.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
