"""`make demo` end to end on DeiT-T: the files it leaves carry the schedule that was asked for."""

import json

from tdm_edge import demo


def test_demo_exports_verified_models_with_their_schedules(tmp_path, capsys):
    assert demo.main(["--model", "deit_tiny_patch16_224", "--keep-rate", "0.5", "--out", str(tmp_path)]) == 0
    bat = json.loads((tmp_path / "deit_tiny_patch16_224_bat.json").read_text())
    unpruned = json.loads((tmp_path / "deit_tiny_patch16_224_unpruned.json").read_text())
    assert bat["reduction"]["stage_tokens"] == [197, 99, 50, 26]
    assert unpruned["reduction"]["stage_tokens"] == [197]
    out = capsys.readouterr().out
    assert "TensorRT 8.5: clean" in out and "TensorRT 10: clean" in out
    assert out.count("verification: passed") == 2


def test_demo_bad_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    assert demo.main(["--model", "deit_tiny_patch16_224", "--checkpoint", str(tmp_path / "none.pth"),
                      "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
