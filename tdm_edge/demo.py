"""``make demo``: the pipeline that exists so far, on DeiT-S, offline.

Random weights (no checkpoint is shipped or downloaded); pass ``--checkpoint`` for real ones. Writes to ``out/demo``.
"""

from __future__ import annotations

import argparse
import sys

from .errors import UsageError


def run(model_name: str, keep_rate: float, checkpoint: str | None, out_dir: str) -> None:
    from .flops import flops_report
    from .models import create_model

    print(f"== 1. token reduction: {model_name}, BAT, keep rate {keep_rate}")
    model = create_model(model_name, method="bat", keep_rate=keep_rate, checkpoint=checkpoint)
    schedule = model.tdm_schedule
    for stage in schedule.stages:
        print(f"   block {stage.block}: {stage.n_in} tokens -> {stage.n_out} "
              f"(K={stage.keep} attentive, {stage.pairs} pairs merged, {stage.clusters} clusters)")
    print(flops_report(model, name=model_name).table())


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
