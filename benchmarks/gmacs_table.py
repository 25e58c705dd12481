"""GMACs per image for DeiT-T/S at keep rates 0.5-0.9 (BAT, EViT, ToMe at equal token budget), beside the paper.

Counting: tdm_edge.reduce.flops (the paper's torchprofile rules). Deterministic: no timing involved.
Usage: python benchmarks/gmacs_table.py [--out benchmarks/results/gmacs.md]
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from tdm_edge import __version__
from tdm_edge.reduce.flops import flops_report
from tdm_edge.reduce.models import create_model

PAPER = {  # (model, keep rate) -> (GMACs, top-1) from the BAT paper (CVPR 2023), ImageNet-1k, 224 px
    ("deit_small_patch16_224", 1.0): (4.60, 79.8),
    ("deit_small_patch16_224", 0.7): (3.00, 79.6),
    ("deit_small_patch16_224", 0.6): (2.58, 79.3),
    ("deit_small_patch16_224", 0.5): (2.34, 79.0),
    ("deit_tiny_patch16_224", 1.0): (1.26, 72.2),
    ("deit_tiny_patch16_224", 0.7): (0.8, 72.3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/gmacs.md")
    args = parser.parse_args()
    rows, records = [], []
    for name in ("deit_tiny_patch16_224", "deit_small_patch16_224"):
        for keep in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5):
            cells = {}
            for method in ("bat", "evit", "tome"):
                report = flops_report(create_model(name, method=method, keep_rate=keep))
                cells[method] = report
                records.append(report.as_dict())
            paper = PAPER.get((name, keep))
            bat = cells["bat"]
            rows.append(f"| {name} | {keep} | {' -> '.join(map(str, bat.stage_tokens))} | {bat.gmacs:.3f} | "
                        f"{paper[0] if paper else '-'} | {paper[1] if paper else '-'} | {cells['evit'].gmacs:.3f} | "
                        f"{cells['tome'].gmacs:.3f} |")
    header = ("| model | keep rate | BAT tokens per stage | BAT GMACs (ours) | paper GMACs | paper top-1 | "
              "EViT GMACs | ToMe GMACs |\n|---|---|---|---|---|---|---|---|")
    text = "\n".join([header, *rows])
    print(text)
    meta = f"tdm-edge {__version__}, torch {torch.__version__}, {platform.machine()}"
    with open(args.out, "w") as f:
        f.write(f"# GMACs per image, 224 px (counted by tdm_edge.reduce.flops; {meta})\n\n{text}\n")
    with open(args.out.replace(".md", ".json"), "w") as f:
        json.dump({"meta": meta, "rows": records}, f, indent=1)


if __name__ == "__main__":
    main()
