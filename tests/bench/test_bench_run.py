"""A real (short) `tdm-edge bench` and `tdm-edge tune` on a small DeiT, and their bad-input lines."""

import json

import numpy as np
import pytest

from tdm_edge import cli
from tdm_edge.bench.stats import paired_ratio

SMALL = ["--model", "deit_tiny_patch16_224", "--img-size", "64", "--threads", "1"]


def test_bench_measures_three_models_and_reports_consistent_ratios(tmp_path, capsys):
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    rc = cli.main(["bench", *SMALL, "--batch", "1,2", "--runs", "3", "--repeats", "1", "--json", str(out),
                   "--plot", str(png)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["settings"]["stage_tokens"] == [17, 13, 10, 8]  # 1 + ceil(0.7 * 16), ...
    assert result["settings"]["weights"].startswith("random")
    assert "random weights" in capsys.readouterr().err
    from tdm_edge.reduce.flops import flops_report
    from tdm_edge.reduce.models import create_model

    report = flops_report(create_model("deit_tiny_patch16_224", keep_rate=0.7, img_size=64))
    assert result["gmac_ratio"] == pytest.approx(report.ratio, abs=1e-4)
    for batch in ("1", "2"):
        entry = result["batches"][batch]
        times = entry["times_ms"][0]  # one process: {model: rounds}
        assert set(times) == {"unpruned", "pruned", "ideal"} and len(times["pruned"]) == 3
        assert entry["ratios"]["pruned/ideal"] == pytest.approx(paired_ratio(times["pruned"], times["ideal"]),
                                                                abs=1e-4)
        flat = [t for rnd in times["pruned"] for t in rnd]
        assert entry["per_model"]["pruned"]["p50_ms"] == pytest.approx(float(np.median(flat)), abs=1e-3)
        assert entry["per_model"]["pruned"]["images_per_s"] == pytest.approx(
            1e3 * int(batch) / entry["per_model"]["pruned"]["p50_ms"], rel=1e-3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ladder():
    from tdm_edge.bench.tune import measure_ladder

    return measure_ladder("deit_tiny_patch16_224", (1.0, 0.5), threads=1, rounds=3, warmup=1, log=lambda m: None,
                          img_size=64)


def test_tune_writes_the_model_it_picked(ladder, tmp_path):
    from tdm_edge.bench.tune import pick, write_choice
    from tdm_edge.export.onnx_export import read_metadata

    rungs, models = ladder
    assert [r.stage_tokens for r in rungs] == [[17], [17, 9, 5, 3]]
    assert rungs[1].gmacs < rungs[0].gmacs
    target = max(r.fps for r in rungs)  # the faster rung (whichever it was on this machine) meets it
    chosen = pick(rungs, target)
    assert chosen.fps >= target
    assert all(r.fps < target for r in rungs if r.keep_rate > chosen.keep_rate)
    out = tmp_path / "chosen.onnx"
    write_choice(models[chosen.keep_rate], str(out), "ort", "fp32", "deit_tiny_patch16_224", log=lambda m: None)
    assert read_metadata(out)["reduction"]["keep_rate"] == chosen.keep_rate


def test_tune_that_no_rung_meets_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never.onnx"
    rc = cli.main(["tune", *SMALL, "--keep-rates", "0.5", "--runs", "2", "--target-fps", "1e6", "-o", str(out)])
    assert rc == 1 and not out.exists()
    assert "no keep rate reaches 1e+06 FPS" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["bench", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["bench", "--backend", "ort", "--precision", "fp16"], "backend ort cannot run fp16"),
    (["bench", "--batch", "1,eight"], "expected comma-separated positive integers"),
    (["bench", "--batch", "0"], "expected comma-separated positive integers"),
    (["bench", "--checkpoint", "/nonexistent.pth"], "checkpoint not found"),
    (["tune", "--target-fps", "0", "-o", "x.onnx"], "--target-fps must be > 0"),
    (["tune", "--target-fps", "30", "--keep-rates", "0.7,1.5", "-o", "x.onnx"], "keep rates must be in (0, 1]"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0]
