"""tdm_edge.bench.stats and tune.pick on synthetic timings."""

import pytest

from tdm_edge.bench.stats import compared_pairs, paired_ratio, pct, percentiles, rotation, summarise
from tdm_edge.bench.tune import Rung, ladder_table, pick

PAIRS = (("pruned", "ideal"), ("pruned", "unpruned"), ("ideal", "unpruned"))


def test_rotation_puts_every_model_first_equally_often():
    names = ["a", "b", "c"]
    firsts = [rotation(names, i)[0] for i in range(9)]
    assert firsts == ["a", "b", "c"] * 3
    assert rotation(names, 4) == ["b", "c", "a"]


def test_percentiles_of_1_to_100():
    stats = percentiles([float(v) for v in range(1, 101)])
    assert stats["p50_ms"] == 50.5 and stats["p90_ms"] == pytest.approx(90.1) and stats["p99_ms"] == pytest.approx(99.01)
    assert stats["iqr_ms"] == pytest.approx(49.5) and stats["n"] == 100


def test_paired_ratio_cancels_a_drift_that_hits_both_models_in_a_round():
    # the machine slows down 3x over the run; the pruned model is always 4 % slower than ideal within a round
    ideal = [[10.0 * (1 + i / 10), 10.0 * (1 + i / 10) + 0.1] for i in range(21)]
    pruned = [[1.04 * t for t in rnd] for rnd in ideal]
    assert paired_ratio(pruned, ideal) == pytest.approx(1.04)
    pruned[5] = [100.0, 100.0]  # one round disturbed in one model only: the median of the rounds does not move
    assert paired_ratio(pruned, ideal) == pytest.approx(1.04)


def test_summarise_reports_median_over_repeats_range_and_throughput():
    def repeat(factor):
        ideal = [[20.0, 21.0] for _ in range(5)]
        return {"unpruned": [[30.0, 30.0]] * 5, "pruned": [[factor * t for t in r] for r in ideal], "ideal": ideal}

    summary = summarise([repeat(1.02), repeat(1.05), repeat(1.03)], PAIRS, batch=8)
    assert summary["ratios_per_repeat"]["pruned/ideal"] == [1.02, 1.05, 1.03]
    assert summary["ratios"]["pruned/ideal"] == pytest.approx(1.03)
    assert summary["ratio_ranges"]["pruned/ideal"] == [1.02, 1.05]
    assert summary["ratios"]["ideal/unpruned"] == pytest.approx(20.5 / 30.0, abs=1e-4)
    assert summary["per_model"]["ideal"]["n"] == 30 and summary["per_model"]["ideal"]["p50_ms"] == 20.5
    assert summary["per_model"]["unpruned"]["images_per_s"] == pytest.approx(8 / 0.030, abs=0.01)
    assert "evit/ideal" not in summary["ratios"]  # pairs of models that were not measured are left out
    assert pct(1.0426) == 4.26 and pct(0.98) == -2.0


def test_pick_takes_the_highest_keep_rate_that_meets_the_target():
    rungs = [Rung(1.0, [197], 4.6, 25.0, 26.0), Rung(0.8, [197, 158], 3.4, 19.0, 20.0),
             Rung(0.7, [197, 139], 3.0, 16.0, 17.0), Rung(0.5, [197, 99], 2.3, 20.5, 21.0)]  # 0.5 noisy, slower
    assert pick(rungs, 50.0).keep_rate == 0.8  # 1000 / 19 = 52.6 FPS
    assert pick(rungs, 60.0).keep_rate == 0.7
    assert pick(rungs, 30.0).keep_rate == 1.0
    assert pick(rungs, 70.0) is None
    table = ladder_table(rungs, 60.0, pick(rungs, 60.0))
    assert "| 0.70 | 197 -> 139 | 3.000 | 16.00 | 17.00 | 62.5 | **chosen** |" in table
    assert table.index("| 1.00 |") < table.index("| 0.50 |")


def test_summarise_gives_the_ratio_of_the_p50s_beside_the_paired_median():
    # the pruned model is 10 % slower in the same round, but the machine speeds up 2x over the rounds: the
    # paired ratio says 1.10 exactly, the ratio of the pooled medians says something else
    ideal = [[10.0 / (1 + i)] * 2 for i in range(5)]
    times = {"unpruned": [[12.0 / (1 + i)] * 2 for i in range(5)], "pruned": [[1.1 * t for t in r] for r in ideal],
             "ideal": ideal, "tome": [[1.2 * t for t in r] for r in ideal]}
    summary = summarise([times], compared_pairs(list(times)))
    assert summary["ratios"]["pruned/ideal"] == pytest.approx(1.1)
    pm = summary["per_model"]
    assert summary["p50_ratios"]["pruned/ideal"] == round(pm["pruned"]["p50_ms"] / pm["ideal"]["p50_ms"], 4)
    assert summary["ratios"]["tome/unpruned"] == pytest.approx(1.2 * 10 / 12)  # the extras are in the ratios
    assert summary["ratios"]["pruned/tome"] == pytest.approx(1.1 / 1.2, abs=1e-4)


def test_compared_pairs_put_every_reduction_against_ideal_unpruned_and_bat():
    assert compared_pairs(["unpruned", "pruned", "ideal", "evit", "tome"]) == [
        ("pruned", "ideal"), ("evit", "ideal"), ("tome", "ideal"), ("pruned", "unpruned"), ("evit", "unpruned"),
        ("tome", "unpruned"), ("ideal", "unpruned"), ("pruned", "evit"), ("pruned", "tome")]
    assert compared_pairs(["pruned", "baseline"]) == [("pruned", "baseline")]  # only pairs that were measured


def _result():
    def repeat(shift):
        return {"unpruned": [[10.0 + shift, 10.0]] * 4, "pruned": [[7.5, 7.5 + shift]] * 4,
                "ideal": [[7.0, 7.0]] * 4, "tome": [[8.0, 8.0]] * 4}

    repeats = [repeat(0.0), repeat(0.2)]
    entry = {"per_round": 2, **summarise(repeats, compared_pairs(list(repeats[0]))), "times_ms": repeats}
    entry["pruned_over_ideal_pct"] = pct(entry["ratios"]["pruned/ideal"])
    return {"settings": {"model": "deit_tiny_patch16_224", "method": "bat", "keep_rate": 0.7, "backend": "ort",
                         "precision": "fp32", "stage_tokens": [197, 139, 98, 69]},
            "machine": {"device": "cpu"}, "gmac_ratio": 0.65,
            "machine_state": {"load_average": [1.5, 1.0, 0.5], "cpu_governor": {"performance": 2}, "jetson": None},
            "batches": {"1": entry}}


def test_table_names_its_statistics_load_and_every_measured_method():
    from tdm_edge.bench.run import table

    text = table(_result())
    assert "load 1.50/1.00/0.50, governor performance x2" in text.splitlines()[0]
    assert "`p50s` divides the two p50s shown" in text and "`paired` is the median" in text
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| 1 |")}
    assert set(rows) == {"unpruned", "bat 0.7", "ideal slice", "tome 0.7"}
    entry = _result()["batches"]["1"]
    p, r = entry["p50_ratios"], entry["ratios"]
    assert f"{p['tome/unpruned']:.3f}, {r['tome/unpruned']:.3f}" in rows["tome 0.7"]
    assert rows["tome 0.7"].endswith(f"| {p['pruned/tome']:.3f}, {r['pruned/tome']:.3f} |")  # bat / tome
    assert "batch 1 +" in text.splitlines()[-1]


def test_bench_plot_shows_whole_bars_and_keeps_the_legend_off_them():
    from tdm_edge.bench.plot import bar_limits, bench_figure

    assert bar_limits([2.0, 10.0], [2.5, 11.0]) == (0.0, pytest.approx(12.98))
    assert bar_limits([1.51, 2.33], [38.0, 46.0]) == (0.0, pytest.approx(1.18 * 1.5 * 2.33))  # long whiskers cut
    fig = bench_figure(_result())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_window_extent(renderer))
        top = max(bar.get_height() for bar in ax.patches)
        assert ax.get_ylim()[1] > top and ax.get_ylim()[0] == 0


def test_tune_never_recommends_a_pruned_model_slower_than_unpruned():
    from tdm_edge.bench.tune import slower_than_unpruned

    rungs = [Rung(1.0, [197], 0.03, 1.6, 1.7), Rung(0.7, [197, 139], 0.022, 7.1, 7.5),
             Rung(0.5, [197, 99], 0.019, 1.5, 1.6)]  # a tiny model: keep 0.7 is 4.4x slower than unpruned
    assert slower_than_unpruned(rungs) == [rungs[1]]
    assert pick(rungs, 100.0).keep_rate == 1.0  # 625 FPS unpruned meets it; 0.7 (141 FPS) would too, but refused
    assert pick(rungs, 650.0).keep_rate == 0.5  # faster than unpruned: allowed
    assert "refused: not faster than unpruned" in ladder_table(rungs, 100.0, pick(rungs, 100.0))
    assert pick(rungs[1:2], 100.0).keep_rate == 0.7  # without the unpruned rung there is nothing to refuse against
