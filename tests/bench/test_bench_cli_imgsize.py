"""bench and tune check --img-size with the shared rule (limits.check_image_size), before any model loads."""

import pytest

from tdm_edge.cli import main


@pytest.mark.parametrize("command", [["bench"], ["tune", "--target-fps", "30", "-o", "chosen.onnx"]])
@pytest.mark.parametrize("size, words", [
    (100, "not a multiple of deit_tiny_patch16_224's patch size 16 (try 96 or 112)"),
    (0, "image size must be in 1..1024"),  # while parsing, as add_model_arguments does
])
def test_img_size_is_checked_like_everywhere_else(command, size, words, capsys):
    try:
        code = main([*command, "--model", "deit_tiny_patch16_224", "--img-size", str(size)])
    except SystemExit as exited:  # a bound is refused while parsing
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, words", [
    (["bench", "--backend", "trt"], "backend trt needs tensorrt, which is not installed here"),
    (["tune", "--backend", "trt", "--target-fps", "30", "-o", "x.engine"], "backend trt needs tensorrt"),
    (["tune", "--backend", "ort", "--target-fps", "30", "-o", "x.engine"], "writes an .onnx, not an .engine"),
    (["tune", "--backend", "trt", "--target-fps", "30", "-o", "x.onnx"], "writes an .engine"),
])
def test_impossible_combinations_fail_before_any_export(argv, words, capsys, monkeypatch):
    """Backend not installed, output kind the backend does not write: one line, before exporting or measuring."""
    import sys

    if "tensorrt" in sys.modules or __import__("importlib.util").util.find_spec("tensorrt") is not None:
        if "not installed" in words:
            pytest.skip("TensorRT is installed here")
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and words in captured.err and captured.err.count("\n") == 1, captured.err
    assert "exported" not in captured.out + captured.err.replace("nothing was exported", "")
