"""tdm_edge.bench.stats and tune.pick on synthetic timings."""

import pytest

from tdm_edge.bench.stats import paired_ratio, pct, percentiles, rotation, summarise
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
