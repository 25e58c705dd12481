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


COLOURS = {"unpruned": "#888888", "pruned": "#1f77b4", "ideal": "#2ca02c", "evit": "#ff7f0e", "tome": "#9467bd"}


def bar_limits(p50: list[float], q3: list[float]) -> tuple[float, float]:
    """The y range of a panel: from 0 to a little above the tallest bar or whisker, but at most 1.5x the tallest
    bar, so the bars stay readable when a busy machine gives long whiskers (those are cut at the top)."""
    tallest = max(p50)
    return 0.0, 1.18 * max(tallest, min(max(q3), 1.5 * tallest))


def plot_bench(result: dict, path: str | os.PathLike) -> None:
    """:func:`bench_figure` written to ``path`` (PNG)."""
    plt = _pyplot()
    fig = bench_figure(result)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench_figure(result: dict):
    """Bars of p50 latency per model and batch, whiskers from the first to the third quartile, the p50 written in
    each bar, and the unpruned p50 scaled by the GMAC ratio as a dashed line; the legend below the panels (never
    over the data)."""
    plt = _pyplot()
    batches = list(result["batches"])
    keys = list(result["batches"][batches[0]]["per_model"])
    s = result["settings"]
    names = {"pruned": f"{s['method']} {s['keep_rate']}", "ideal": "ideal slice"}
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.9), squeeze=False)
    handles = None
    for ax, batch in zip(axes[0], batches):
        pm = result["batches"][batch]["per_model"]
        p50 = [pm[k]["p50_ms"] for k in keys]
        low = [max(0.0, pm[k]["p50_ms"] - pm[k].get("q1_ms", pm[k]["p50_ms"])) for k in keys]
        high = [max(0.0, pm[k].get("q3_ms", pm[k]["p50_ms"]) - pm[k]["p50_ms"]) for k in keys]
        x = list(range(len(keys)))
        bars = ax.bar(x, p50, yerr=[low, high], capsize=3, color=[COLOURS.get(k, "#17becf") for k in keys],
                      error_kw={"lw": 1})
        top = bar_limits(p50, [p + h for p, h in zip(p50, high)])[1]
        for bar, value, below in zip(bars, p50, low):  # centred under the whisker's foot; above a short bar
            inside = value - below > 0.12 * top
            centre = bar.get_x() + bar.get_width() / 2
            ax.text(centre if inside else bar.get_x() + bar.get_width() * 0.55,
                    (value - below) / 2 if inside else value, f"{value:.2f}", ha="center" if inside else "left",
                    va="center" if inside else "bottom", fontsize=7, color="white" if inside else "black",
                    fontweight="bold")
        line = ax.axhline(pm["unpruned"]["p50_ms"] * result["gmac_ratio"], ls="--", c="k", lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels([names.get(k, k) for k in keys], fontsize=8)
        ax.set_ylim(0.0, top)
        ax.set_title(f"batch {batch}", fontsize=9)
        ax.set_ylabel("p50 latency, ms")
        handles = [line]
    fig.suptitle(f"{s['model']} {s['method']} {s['keep_rate']}, {s['backend']} {s['precision']}, "
                 f"{result['machine']['device']}", fontsize=9)
    fig.legend(handles, [f"unpruned p50 x GMAC ratio {result['gmac_ratio']:.3f}"], loc="lower center",
               fontsize=7, frameon=False, title="whiskers: 1st to 3rd quartile (cut at the top of the panel)",
               title_fontsize=7, ncol=1)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


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
