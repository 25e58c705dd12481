"""The equal-cost study: unpruned / BAT / EViT / ToMe / random drop at keep 0.7 and 0.5, off the shelf and fine-tuned.

One trained unpruned model (``tdm-edge train --method none``) is patched with each method (off the shelf) and
briefly fine-tuned with each (``tdm-edge train --finetune``), over several seeds; every model is evaluated on a
held-out set of an unseen seed. BAT, EViT and random keep the same token counts per stage; ToMe's r is chosen for
the closest GMACs (schedule.py). Also: BAT's cluster ratio (0.1 / 0.25 / 0.5) and DPC-kNN k, off the shelf, and
with ``--ablation-finetune`` the cluster ratios fine-tuned too (k is left at 5 there: off the shelf it moved top-1
by under a point).

Usage (see docs/training.md for the data and the base model):
    python benchmarks/equal_cost_study.py --base RUN/model.safetensors --train DATA/train --val DATA/val \
        --test DATA/test [--seeds 2] [--finetune-epochs 1] [--jobs 3] [--ablation-finetune] \
        [--out benchmarks/results/equal_cost]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from tdm_edge import __version__
from tdm_edge.limits import CLUSTER_RATIO, KNN
from tdm_edge.reduce.flops import flops_report
from tdm_edge.train.data import image_folder, transforms
from tdm_edge.train.evaluate import evaluate
from tdm_edge.train.trained import load_trained

METHODS = ("bat", "evit", "tome", "random")
KEEPS = (0.7, 0.5)


def test_accuracy(model, test_dir: str, seed: int = 0) -> float:
    """Top-1 (%) on the held-out folder; ``seed`` fixes the random-drop control's choices."""
    loader = torch.utils.data.DataLoader(image_folder(test_dir, transforms(model, training=False)), batch_size=200)
    torch.manual_seed(seed)
    return evaluate(model, loader, torch.device("cpu"))["top1"]


def summary(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max of a list of accuracies."""
    return {"mean": round(statistics.fmean(values), 2),
            "std": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values), "values": values}


def off_the_shelf(base: str, test_dir: str, seeds: int) -> list[dict]:
    rows = []
    for keep in (1.0, *KEEPS):
        for method in ("none",) if keep == 1.0 else METHODS:
            model, _ = load_trained(base, method=method, keep_rate=keep)
            runs = [test_accuracy(model, test_dir, s) for s in (range(seeds) if method == "random" else [0])]
            rows.append({"method": method, "keep_rate": keep, "gmacs": flops_report(model).gmacs,
                         "tokens": model.tdm_schedule.stage_tokens, "top1": summary(runs)})
            print(f"off the shelf  {method:6s} keep {keep}: {rows[-1]['top1']['mean']:.2f} %", flush=True)
    return rows


def ablation(base: str, test_dir: str) -> list[dict]:
    rows = []
    for keep in KEEPS:
        for ratio, knn in ((0.1, 5), (0.25, 5), (0.5, 5), (0.25, 3), (0.25, 8)):
            try:
                model, _ = load_trained(base, method="bat", keep_rate=keep, cluster_ratio=ratio, knn=knn)
            except ValueError as err:  # a schedule that cannot be built at this keep rate (too few tokens)
                rows.append({"keep_rate": keep, "cluster_ratio": ratio, "knn": knn, "error": str(err)})
                continue
            rows.append({"keep_rate": keep, "cluster_ratio": ratio, "knn": knn, "gmacs": flops_report(model).gmacs,
                         "tokens": model.tdm_schedule.stage_tokens, "top1": test_accuracy(model, test_dir)})
            print(f"ablation keep {keep} ratio {ratio} k {knn}: {rows[-1]['top1']:.2f} %", flush=True)
    return rows


def _finetune_one(job: dict, args: argparse.Namespace) -> dict:
    ratio = job.get("cluster_ratio")
    out = Path(args.runs) / f"{job['method']}_{job['keep_rate']}{f'_cr{ratio}' if ratio else ''}_s{job['seed']}"
    cmd = [sys.executable, "-m", "tdm_edge.cli", "train", "--model", args.model, "--finetune", args.base,
           "--data", args.train, "--val", args.val, "--output", str(out), "--method", job["method"],
           "--keep-rate", str(job["keep_rate"]), "--epochs", str(args.finetune_epochs), "--batch-size", "32",
           "--lr", str(args.lr), "--min-lr", "1e-5", "--weight-decay", "0.05", "--mixup", "0", "--cutmix", "0",
           "--seed", str(job["seed"]), "--quiet"] + (["--resume"] if (out / "last.pth").exists() else []) \
        + (["--cluster-ratio", str(ratio)] if ratio else []) + shlex.split(args.train_extra)
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if proc.returncode != 0 and "nothing to resume" not in proc.stderr:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-500:]}")
    return {**job, "model": str(out / "model.safetensors"), "seconds": round(time.time() - start)}


def start_fine_tuning(args: argparse.Namespace, pool: ThreadPoolExecutor) -> list:
    """Submit every fine-tuning run (subprocesses); they run while the off-the-shelf models are evaluated."""
    jobs = [{"method": "none", "keep_rate": 1.0, "seed": s} for s in range(args.seeds)]
    jobs += [{"method": m, "keep_rate": k, "seed": s} for s in range(args.seeds) for k in KEEPS for m in METHODS]
    if args.ablation_finetune:
        jobs += [{"method": "bat", "keep_rate": k, "seed": s, "cluster_ratio": r} for s in range(args.seeds)
                 for k in KEEPS for r in ABLATION_RATIOS]
    return [pool.submit(_finetune_one, job, args) for job in jobs]


ABLATION_RATIOS = (0.1, 0.5)  # fine-tuned beside the default ratio


def _test_runs(runs: list[dict], test_dir: str) -> tuple[list[float], object]:
    accs, model = [], None
    for run in runs:
        model, _ = load_trained(run["model"])
        accs.append(test_accuracy(model, test_dir, run["seed"]))
    return accs, model


def fine_tuned_ablation(args: argparse.Namespace, done: list[dict], main_rows: list[dict]) -> list[dict]:
    """BAT fine-tuned at each cluster ratio (default k); the default ratio's row is the main table's BAT row."""
    rows = []
    for keep in KEEPS:
        for ratio in sorted((*ABLATION_RATIOS, CLUSTER_RATIO)):
            if ratio == CLUSTER_RATIO:  # already evaluated for the main table
                bat = next(r for r in main_rows if r["method"] == "bat" and r["keep_rate"] == keep)
                rows.append({"keep_rate": keep, "cluster_ratio": ratio, "knn": KNN,
                             **{k: bat[k] for k in ("gmacs", "top1", "models")}})
                continue
            runs = [d for d in done if d["method"] == "bat" and d["keep_rate"] == keep
                    and d.get("cluster_ratio") == ratio]
            accs, model = _test_runs(runs, args.test)
            rows.append({"keep_rate": keep, "cluster_ratio": ratio, "knn": KNN, "gmacs": flops_report(model).gmacs,
                         "top1": summary(accs), "models": [r["model"] for r in runs]})
            print(f"fine-tuned bat keep {keep} ratio {ratio}: {rows[-1]['top1']['mean']:.2f} % {accs}", flush=True)
    return rows


def fine_tuned(args: argparse.Namespace, futures: list) -> list[dict]:
    done = [f.result() for f in futures]
    rows = []
    for keep in (1.0, *KEEPS):
        for method in ("none",) if keep == 1.0 else METHODS:
            runs = [d for d in done if d["method"] == method and d["keep_rate"] == keep and "cluster_ratio" not in d]
            accs, model = _test_runs(runs, args.test)
            rows.append({"method": method, "keep_rate": keep, "gmacs": flops_report(model).gmacs,
                         "tokens": model.tdm_schedule.stage_tokens, "top1": summary(accs),
                         "models": [r["model"] for r in runs]})
            print(f"fine-tuned     {method:6s} keep {keep}: {rows[-1]['top1']['mean']:.2f} % {accs}", flush=True)
    return rows, (fine_tuned_ablation(args, done, rows) if args.ablation_finetune else [])


def write_markdown(result: dict, path: Path) -> None:
    def cell(top1: dict) -> str:
        return f"{top1['mean']:.2f} ± {top1['std']:.2f} ({top1['min']:.1f}-{top1['max']:.1f}, n={top1['n']})"

    lines = [f"# Equal-cost study ({result['meta']['note']})", "", result["meta"]["machine"], "",
             "Top-1 (%) on the held-out set, mean ± sample std over seeds (min-max, n).", "",
             "| method | keep | tokens per stage | GMACs | off the shelf | fine-tuned |", "|---|---|---|---|---|---|"]
    tuned = {(r["method"], r["keep_rate"]): r for r in result.get("fine_tuned", [])}
    for row in result["off_the_shelf"]:
        ft = tuned.get((row["method"], row["keep_rate"]))
        name = row["method"] + (" (pre-faithful)" if row["method"] == "tome" and result["meta"]["tome_pre_faithful"]
                                else "")
        lines.append(f"| {name} | {row['keep_rate']} | {' -> '.join(map(str, row['tokens']))} | "
                     f"{row['gmacs']:.4f} | {cell(row['top1'])} | {cell(ft['top1']) if ft else '-'} |")
    lines += ["", "BAT's cluster ratio and DPC-kNN k (fine-tuned: only with --ablation-finetune):", "",
              "| keep | cluster ratio | k | tokens per stage | GMACs | off the shelf | fine-tuned |",
              "|---|---|---|---|---|---|---|"]
    tuned = {(r["keep_rate"], r["cluster_ratio"], r["knn"]): r for r in result.get("fine_tuned_ablation", [])}
    for row in result["ablation"]:
        if "error" in row:
            lines.append(f"| {row['keep_rate']} | {row['cluster_ratio']} | {row['knn']} | - | - | {row['error']} | - |")
        else:
            ft = tuned.get((row["keep_rate"], row["cluster_ratio"], row["knn"]))
            lines.append(f"| {row['keep_rate']} | {row['cluster_ratio']} | {row['knn']} | "
                         f"{' -> '.join(map(str, row['tokens']))} | {row['gmacs']:.4f} | {row['top1']:.2f} | "
                         f"{cell(ft['top1']) if ft else '-'} |")
    path.write_text("\n".join(lines) + "\n")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in ((axes[0], "off_the_shelf", "off the shelf"), (axes[1], "fine_tuned", "fine-tuned")):
        for method, marker in (("none", "s"), ("bat", "o"), ("evit", "^"), ("tome", "v"), ("random", "x")):
            rows = [r for r in result.get(key, []) if r["method"] == method]
            if rows:
                ax.errorbar([r["gmacs"] for r in rows], [r["top1"]["mean"] for r in rows],
                            yerr=[[r["top1"]["mean"] - r["top1"]["min"] for r in rows],
                                  [r["top1"]["max"] - r["top1"]["mean"] for r in rows]],
                            marker=marker, capsize=3, linestyle="none", label=method)
        ax.set_title(title)
        ax.set_xlabel("GMACs per image")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out top-1 (%), bars: min-max over seeds")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the trained unpruned model.safetensors")
    parser.add_argument("--model", default="tdm_vit_micro_patch4_56")
    parser.add_argument("--train", required=True)
    parser.add_argument("--val", required=True)
    parser.add_argument("--test", required=True, help="held-out ImageFolder of an unseen seed")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--jobs", type=int, default=3, help="fine-tuning processes at once")
    parser.add_argument("--train-extra", default="", help="more tdm-edge train options for every fine-tuning run "
                        "(later ones win), e.g. \"--scale 0.9,1.0 --smoothing 0\"")
    parser.add_argument("--runs", default="out/equal_cost_runs")
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--ablation-finetune", action="store_true",
                        help=f"also fine-tune BAT at cluster ratios {ABLATION_RATIOS} (k {KNN})")
    parser.add_argument("--tome-pre-faithful", action="store_true", help="mark ToMe as the pre-rewrite version")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default="benchmarks/results/equal_cost")
    args = parser.parse_args()
    torch.set_num_threads(1)
    meta = {"machine": f"tdm-edge {__version__}, torch {torch.__version__}, {platform.machine()}, "
                       f"{os.cpu_count()} CPU cores shared with other jobs (CPU only)",
            "note": args.note, "tome_pre_faithful": args.tome_pre_faithful, "base": args.base,
            "test": args.test, "seeds": args.seeds, "finetune_epochs": args.finetune_epochs, "lr": args.lr,
            "train_extra": args.train_extra}
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [] if args.skip_finetune else start_fine_tuning(args, pool)
        result = {"meta": meta, "off_the_shelf": off_the_shelf(args.base, args.test, max(args.seeds, 3)),
                  "ablation": ablation(args.base, args.test)}
        if futures:
            result["fine_tuned"], result["fine_tuned_ablation"] = fine_tuned(args, futures)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    write_markdown(result, out.with_suffix(".md"))
    plot(result, out.with_suffix(".png"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
