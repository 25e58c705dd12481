"""`make demo` end to end (its --quick form): every step leaves what it promises, and the report says what they
measured."""

import json

import pytest

from tdm_edge import demo


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert demo.main(["--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_demo_accounts_for_every_frame_and_names_the_accuracy(run):
    import cv2

    out, report = run
    video = report["steps"]["video"]
    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    assert frames == video["input_frames"] == video["logged_frames"] == 48  # 24 images x 2 frames
    assert size == (448, 448)
    top1 = report["steps"]["eval"]["top1"]
    # the card's 81.2 % (3,000 held-out images) less two standard deviations of a 60-image estimate (~5 points each)
    assert 70 <= top1 <= 100
    assert f"top-1 **{top1} %**" in (out / "report.md").read_text()


def test_demo_exports_lints_quantizes_and_benchmarks_the_demo_model(run):
    from tdm_edge.export.onnx_export import read_metadata

    out, report = run
    meta = read_metadata(out / "demo_bat.onnx")
    assert meta["reduction"]["stage_tokens"] == report["steps"]["flops"]["stage_tokens"] == [197, 139, 98, 69]
    assert meta["labels"] == report["labels"] and meta["weights"]["file"] == "model.safetensors"
    lint = report["steps"]["lint"]
    assert "clean for TensorRT 8.5" in lint["demo_bat.onnx TensorRT 8.5"]
    assert "6 need a plugin loaded" in lint["demo_bat_plugin.onnx TensorRT 10"]  # 3 stages, 2 lines each
    for target in ("int8", "cpu8"):
        assert (out / f"demo_bat.{target}.onnx").stat().st_size > 0
        # INT8 against FP32 on the 60 held-out images: measured 57/60 (int8 Q/DQ) and 58/60 (cpu8); on this 48-wide
        # model the recipe does not promise 0.99 (its card: Q/DQ 81.4 % vs FP32 81.2 % on 3,000 images, answers move
        # both ways), so at most 6 of 60 may change
        assert report["steps"]["compare"][target]["top1_agreement"] >= 0.9
    onnx_top1, top1 = report["steps"]["onnx_top1"], report["steps"]["eval"]["top1"]
    assert onnx_top1[""] == top1  # the FP32 export scores what the checkpoint scores, on the same images
    # measured 0 and 3.3 points on 60 images; the card: 0.2 (Q/DQ) and 0.4 (CPU INT8) points on 3,000
    assert all(abs(onnx_top1[f".{t}"] - top1) <= 10 for t in ("int8", "cpu8"))
    bench = report["steps"]["bench"]
    assert set(bench["1"]["p50_ms"]) == {"unpruned", "pruned", "ideal"}
    assert bench["gmac_ratio"] == pytest.approx(report["steps"]["flops"]["ratio"], abs=1e-3)
    assert bench["model"] == "tdm_vit_micro_patch4_56" and bench["machine"].startswith("load ")
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_measures_deit_t_beside_it_and_says_where_pruning_pays(run):
    out, report = run
    deit = report["steps"]["bench_deit_t"]
    assert deit["model"] == "deit_tiny_patch16_224" and set(demo.batches_of(deit)) == {"1", "8"}
    assert (out / "bench_deit_t.png").read_bytes()[:4] == b"\x89PNG"
    sentence = report["steps"]["pays"]
    assert sentence == demo.pays_sentence(deit, report["steps"]["bench"])  # the numbers of this run
    text = (out / "report.md").read_text()
    assert f"**{sentence}**" in text and "![bench](bench_deit_t.png)" in text


def _summary(model, ms):
    """A bench summary as the demo keeps it: {batch: p50s and paired ratios} (paired = the p50 ratio here)."""
    summary = {b: {"p50_ms": dict(zip(("unpruned", "pruned", "ideal"), v)),
                   "ratios": {"pruned/unpruned": round(v[1] / v[0], 4), "pruned/ideal": round(v[1] / v[2], 4)}}
               for b, v in ms.items()}
    summary.update(model=model, method="bat", keep_rate=0.7, gmac_ratio=0.65, plot="x.png", machine="load 0.1")
    return summary


def test_the_pays_sentence_says_where_and_why_with_the_numbers():
    deit = _summary("deit_tiny_patch16_224", {"1": (8.0, 6.16, 5.8), "8": (60.0, 42.0, 40.0)})
    tiny = _summary("tdm_vit_micro_patch4_56", {"1": (1.77, 7.10, 1.2), "8": (10.0, 11.2, 7.0)})
    text = demo.pays_sentence(deit, tiny)
    assert text.startswith("Pruning pays on deit_tiny_patch16_224: BAT 0.7 takes 0.77x the unpruned time at batch 1 "
                           "(6.16 vs 8.00 ms) and 0.70x at batch 8 (42.00 vs 60.00 ms); pruning does not pay on the "
                           "demo model (tdm_vit_micro_patch4_56): BAT 0.7 takes 4.01x the unpruned time at batch 1")
    # why: the merge's cost (pruned - ideal) against the work removed (unpruned - ideal), per batch
    assert "on tdm_vit_micro_patch4_56 the merge stages add 5.90/4.20 ms" in text
    assert "removing the tokens saves 0.57/3.00 ms (batch 1/8)" in text
    mixed = _summary("deit_tiny_patch16_224", {"1": (8.0, 8.4, 5.8), "8": (60.0, 42.0, 40.0)})
    assert demo.pays_sentence(mixed, tiny).startswith("Pruning pays on deit_tiny_patch16_224 only at batch 8:")


def test_demo_bad_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    assert demo.main(["--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
