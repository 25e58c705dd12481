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
    assert 100 / 6 < top1 <= 100  # better than chance over the 6 classes
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
        assert 0 < report["steps"]["compare"][target]["top1_agreement"] <= 1
    onnx_top1, top1 = report["steps"]["onnx_top1"], report["steps"]["eval"]["top1"]
    assert onnx_top1[""] == top1  # the FP32 export scores what the checkpoint scores, on the same images
    assert all(abs(onnx_top1[f".{t}"] - top1) <= 25 for t in ("int8", "cpu8"))  # int8 moves answers, not all
    bench = report["steps"]["bench"]
    assert set(bench["1"]["p50_ms"]) == {"unpruned", "pruned", "ideal"}
    assert bench["gmac_ratio"] == pytest.approx(report["steps"]["flops"]["ratio"], abs=1e-3)
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_bad_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    assert demo.main(["--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
