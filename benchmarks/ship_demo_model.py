"""Copy a trained model into tdm_edge/assets/demo/ with its labels and a model card measured on fresh data.

Usage: PYTHONPATH=. python benchmarks/ship_demo_model.py RUN/model.safetensors --held-out DIR --recipe "..."
The held-out folder must be generated with a seed no training or validation run used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil

import torch

from tdm_edge import __version__
from tdm_edge.train.evaluate import format_eval, run_eval
from tdm_edge.train.trained import DEMO_DIR, read_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--held-out-seed", required=True, type=int)
    parser.add_argument("--recipe", required=True, help="the commands that made the model (markdown)")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = read_record(args.model)
    result = run_eval(args.model, args.held_out)
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
  `tdm-edge eval --data {args.held_out}`):

```
{format_eval(result)}
```

- **Recipe**:

{args.recipe}

- **INT8**: no figures yet.
- **Measured on**: tdm-edge {__version__}, torch {torch.__version__}, {platform.machine()} CPU (shared, loaded).

{args.notes}
"""
    (DEMO_DIR / "MODEL_CARD.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
