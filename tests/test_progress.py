"""Commands that load torch and a model say what they are doing first (for a person at a terminal), without
changing what a pipe or a test reads."""

import io
import sys

from tdm_edge import cli


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eval_says_it_is_loading_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    missing = str(tmp_path / "no_such_folder")
    assert cli.main(["eval", "--data", missing, "--json"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # not a terminal: the error line only
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["eval", "--data", missing, "--json"]) == 2
    lines = terminal.getvalue().splitlines()
    assert lines[0] == "loading: torch, the model and the images..." and "error" in lines[1]


def test_flops_says_what_it_is_doing_before_torch_loads(capsys):
    assert cli.main(["flops", "--model", "deit_tiny_patch16_224", "--img-size", "64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("] import: torch, timm") and out[1].endswith("] build: deit_tiny_patch16_224 (bat)")
    assert out[3] == "deit_tiny_patch16_224 @ 64px, bat, keep rate 0.7"
