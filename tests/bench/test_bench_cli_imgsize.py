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
