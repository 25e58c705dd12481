"""The latency benchmark's statistics (benchmarks/ort_latency.py), on synthetic timings."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "ort_latency.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ort_latency", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_ratio_cancels_a_drift_that_hits_both_models_in_a_round(bench):
    # the machine slows down 3x over the run; BAT is always 4 % slower than ideal within a round
    ideal = [[10.0 * (1 + i / 10), 10.0 * (1 + i / 10) + 0.1] for i in range(21)]
    bat = [[1.04 * t for t in rnd] for rnd in ideal]
    assert bench.paired_ratio(bat, ideal) == pytest.approx(1.04)
    # one round disturbed by a stall in one model only moves the median of the rounds not at all
    bat[5] = [100.0, 100.0]
    assert bench.paired_ratio(bat, ideal) == pytest.approx(1.04)


def test_summarise_reports_the_median_over_repeats_and_their_range(bench):
    def repeat(bat_factor):
        ideal = [[20.0, 21.0] for _ in range(5)]
        return {"unpruned": [[30.0, 30.0]] * 5, "bat": [[bat_factor * t for t in r] for r in ideal],
                "evit": [[1.01 * t for t in r] for r in ideal], "ideal": ideal}

    summary = bench.summarise([repeat(1.02), repeat(1.05), repeat(1.03)])
    assert summary["ratios_per_repeat"]["bat/ideal"] == [1.02, 1.05, 1.03]
    assert summary["bat_over_ideal_pct"] == pytest.approx(3.0)
    assert summary["bat_over_ideal_pct_range"] == pytest.approx([2.0, 5.0])
    assert summary["ratios"]["evit/ideal"] == pytest.approx(1.01)
    assert summary["ratios"]["ideal/unpruned"] == pytest.approx(20.5 / 30.0, abs=1e-4)
    assert summary["per_model"]["ideal"]["n"] == 30 and summary["per_model"]["ideal"]["median_ms"] == 20.5
