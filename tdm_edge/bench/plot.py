"""Pictures of benchmark results (matplotlib with the Agg backend, imported only here)."""

from __future__ import annotations

import os


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        from ..errors import UsageError

        raise UsageError("plots need matplotlib: pip install 'tdm-edge[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bench(result: dict, path: str | os.PathLike) -> None:
    """Bars of p50 latency (p90 as the error bar) per model and batch, the GMAC ratio as a reference line."""
    plt = _pyplot()
    batches = list(result["batches"])
    keys = list(result["batches"][batches[0]]["per_model"])
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.6), squeeze=False)
    s = result["settings"]
    for ax, batch in zip(axes[0], batches):
        pm = result["batches"][batch]["per_model"]
        p50 = [pm[k]["p50_ms"] for k in keys]
        err = [[0] * len(keys), [pm[k]["p90_ms"] - pm[k]["p50_ms"] for k in keys]]
        ax.bar(keys, p50, yerr=err, capsize=4, color=["#888", "#1f77b4", "#2ca02c", "#ff7f0e"][:len(keys)])
        ax.axhline(pm["unpruned"]["p50_ms"] * result["gmac_ratio"], ls="--", c="k", lw=1, label="unpruned x GMAC ratio")
        ax.set_title(f"batch {batch}")
        ax.set_ylabel("p50 latency, ms (bar to p90)")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{s['model']} {s['method']} {s['keep_rate']}, {s['backend']} {s['precision']}, "
                 f"{result['machine']['device']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ladder(rows: list[dict], path: str | os.PathLike, title: str, target_fps: float | None = None) -> None:
    """Throughput against keep rate, one curve per series (``rows``: keep_rate, fps, series)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for series in dict.fromkeys(r["series"] for r in rows):
        pts = sorted((r["keep_rate"], r["fps"]) for r in rows if r["series"] == series)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=series)
    if target_fps:
        ax.axhline(target_fps, ls="--", c="r", lw=1, label=f"target {target_fps:g} FPS")
    ax.set_xlabel("keep rate")
    ax.set_ylabel("images / s (batch 1, p50)")
    ax.set_title(title, fontsize=9)
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
