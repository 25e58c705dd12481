"""Bad input to calibrate and compare: one line on stderr, exit code 2, nothing written."""

import os

import onnx
import pytest

from tdm_edge.cli import main


def _run(capsys, argv, out_dir):
    before = set(os.listdir(out_dir))
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    errors = [line for line in err if "error" in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err)
    assert set(os.listdir(out_dir)) == before  # no partial output, no temporary file left
    return errors[0]


@pytest.fixture(scope="module")
def fp32(trained):
    return str(trained["fp32"])


def test_empty_image_folder(fp32, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = _run(capsys, ["calibrate", fp32, "--images", str(tmp_path / "empty"), "-o", str(tmp_path / "o.onnx")],
                tmp_path)
    assert "no image files" in line


def test_unreadable_images(fp32, tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    for i in range(6):
        (tmp_path / "bad" / f"{i}.png").write_bytes(b"not a png")
    line = _run(capsys, ["calibrate", fp32, "--images", str(tmp_path / "bad"), "-o", str(tmp_path / "o.onnx")],
                tmp_path)
    assert "could be decoded" in line


def test_fewer_images_than_one_batch(fp32, trained, tmp_path, capsys):
    import shutil

    (tmp_path / "few").mkdir()
    for name in sorted(os.listdir(trained["calib"]))[:3]:  # the model's static batch is 4
        shutil.copy(trained["calib"] / name, tmp_path / "few" / name)
    line = _run(capsys, ["calibrate", fp32, "--images", str(tmp_path / "few"), "-o", str(tmp_path / "o.onnx")],
                tmp_path)
    assert "fewer than one batch of 4" in line


def test_unreadable_video(fp32, tmp_path, capsys):
    (tmp_path / "v.mp4").write_bytes(b"\x00" * 1000)
    line = _run(capsys, ["calibrate", fp32, "--video", str(tmp_path / "v.mp4"), "-o", str(tmp_path / "o.onnx")],
                tmp_path)
    assert "v.mp4" in line


def test_not_an_onnx_model(trained, tmp_path, capsys):
    (tmp_path / "m.onnx").write_text("hello")
    line = _run(capsys, ["calibrate", str(tmp_path / "m.onnx"), "--synthetic", "8", "-o", str(tmp_path / "o.onnx")],
                tmp_path)
    assert "not an ONNX model" in line


def test_already_quantized_model(fp32, tmp_path, capsys):
    q = tmp_path / "q.onnx"
    assert main(["calibrate", fp32, "--target", "cpu", "-o", str(q)]) == 0
    capsys.readouterr()
    for cmd in (["calibrate", str(q), "--synthetic", "8", "-o", str(tmp_path / "o.onnx")],
                ["compare", str(q), fp32, "--synthetic", "8"]):
        assert "quantized" in _run(capsys, cmd, tmp_path)


def test_model_without_metadata(fp32, tmp_path, capsys):
    proto = onnx.load(fp32)
    del proto.metadata_props[:]
    onnx.save(proto, tmp_path / "bare.onnx")
    line = _run(capsys, ["calibrate", str(tmp_path / "bare.onnx"), "--synthetic", "8", "-o",
                         str(tmp_path / "o.onnx")], tmp_path)
    assert "metadata" in line


def test_output_would_replace_the_model(fp32, tmp_path, capsys):
    import shutil

    shutil.copy(fp32, tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    line = _run(capsys, ["calibrate", str(tmp_path / "m.onnx"), "--synthetic", "8", "-o", str(tmp_path / "m.onnx")],
                tmp_path)
    assert "replace" in line and (tmp_path / "m.onnx").read_bytes() == data


def test_no_calibration_source_for_trt(fp32, tmp_path, capsys):
    line = _run(capsys, ["calibrate", fp32, "-o", str(tmp_path / "o.onnx")], tmp_path)
    assert "--images DIR" in line
