"""Bad input to train / eval: one line on stderr, exit code 2, nothing written."""

import shutil

import pytest

from tdm_edge.cli import main

from .conftest import TINY


def _train(shapes, out, *extra):
    return main(["train", "--model", TINY, "--data", str(shapes), "--output", str(out), "--epochs", "1",
                 "--batch-size", "8", "--quiet", *extra])


def _one_line(capsys, *needles):
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    for needle in needles:
        assert needle in captured.err, captured.err
    return captured.err


def test_empty_data_folder(shapes, tmp_path, capsys):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "val").mkdir()
    assert _train(tmp_path / "data", tmp_path / "out") == 2
    _one_line(capsys, "has no class folders")
    (tmp_path / "data" / "train" / "circle").mkdir()
    assert _train(tmp_path / "data", tmp_path / "out") == 2
    _one_line(capsys, "circle has no images")
    assert not (tmp_path / "out" / "last.pth").exists()


def test_mislabelled_data_folders(shapes, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    shutil.move(data / "val" / "triangle", data / "val" / "star")  # the validation split names another class
    assert _train(data, tmp_path / "out") == 2
    _one_line(capsys, "do not match", "missing ['triangle']", "unexpected ['star']")
    (data / "train" / "circle" / "notes.txt").write_text("not an image")
    assert _train(data, tmp_path / "out") == 2
    _one_line(capsys, "notes.txt is not an image")
    (data / "train" / "circle" / "notes.txt").unlink()
    (data / "train" / "square" / "square_00000.png").write_bytes(b"garbage")
    assert main(["eval", "--checkpoint", "x.safetensors", "--data", str(data / "train")]) == 2
    _one_line(capsys, "square_00000.png is not a readable image")


def test_incompatible_checkpoints(shapes, tmp_path, capsys, one_thread):
    assert _train(shapes, tmp_path / "run", "--method", "none", "--keep-rate", "1") == 0
    model = tmp_path / "run" / "model.safetensors"
    capsys.readouterr()
    # the model's labels are circle/square/triangle; a two-class folder does not match them
    two = tmp_path / "two"
    shutil.copytree(shapes / "val", two)
    shutil.rmtree(two / "triangle")
    assert main(["eval", "--checkpoint", str(model), "--data", str(two)]) == 2
    _one_line(capsys, "do not match", "missing ['triangle']")
    # fine-tuning another architecture from it
    assert _train(shapes, tmp_path / "other", "--finetune", str(model), "--model", "tdm_vit_micro_patch4_56") == 2
    _one_line(capsys, "does not fit")
    # a checkpoint that records nothing
    plain = tmp_path / "plain.pth"
    plain.write_bytes(b"\x00not a checkpoint")
    assert main(["eval", "--checkpoint", str(plain), "--data", str(shapes / "val")]) == 2
    _one_line(capsys, "cannot read checkpoint")
    # resuming a run of another method
    assert _train(shapes, tmp_path / "run", "--resume", "--method", "bat") == 2
    _one_line(capsys, "is a run of", "not of")


@pytest.mark.parametrize("extra, needle", [
    (["--keep-warmup", "1,1"], "leaves no epoch at keep"),
    (["--keep-warmup", "1"], "expected two comma-separated numbers"),
    (["--keep-rate", "1.5"], "keep rate must be in (0, 1]"),
    (["--keep-rate", "0.05"], "too few to merge"),
    (["--cluster-ratio", "2"], "cluster ratio must be in (0, 1]"),
])
def test_invalid_keep_rate_schedules(shapes, tmp_path, capsys, extra, needle):
    try:  # argparse rejects some settings itself (SystemExit 2), the schedule the others
        code = _train(shapes, tmp_path / "out", *extra)
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    _one_line(capsys, needle)
    assert not (tmp_path / "out" / "last.pth").exists()


def test_unwritable_output(shapes, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert _train(shapes, blocker / "run") == 2
    _one_line(capsys, "cannot create output folder")
    assert main(["make-dataset", str(blocker / "d"), "--quiet"]) == 2
    _one_line(capsys, "cannot create")


@pytest.mark.parametrize("option,value", [("--lr", "nan"), ("--lr", "inf"), ("--lr", "0"), ("--lr", "-1e-3"),
                                          ("--min-lr", "nan"), ("--weight-decay", "-1"), ("--mixup", "inf"),
                                          ("--smoothing", "1"), ("--hflip", "1.5"), ("--lr-per-512", "nan")])
def test_non_finite_or_out_of_range_numbers_refused_before_work(shapes, tmp_path, capsys, option, value):
    out = tmp_path / "fresh" / "run"
    with pytest.raises(SystemExit) as exited:  # refused by the option's type, while parsing
        _train(shapes, out, f"{option}={value}")  # "=" so that "-1" is a value
    assert exited.value.code == 2
    _one_line(capsys, option.lstrip("-").split("-")[0])
    assert not (tmp_path / "fresh").exists()  # nothing created


def test_failed_run_leaves_no_empty_folder(shapes, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "run"
    assert _train(shapes, out, "--batch-size", "1024") == 2  # fewer images than one batch: fails after mkdir
    _one_line(capsys, "fewer than one batch")
    assert not (tmp_path / "a").exists()  # the run folder and the parents it made are gone
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert _train(shapes, kept, "--batch-size", "1024") == 2
    capsys.readouterr()
    assert (kept / "notes.txt").read_text() == "mine"  # a folder that existed is never removed


@pytest.mark.parametrize("content", [b"", b"garbage, not a checkpoint", b"PK\x03\x04truncated zip"])
def test_resume_of_a_corrupt_checkpoint_is_one_line(shapes, tmp_path, capsys, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pth").write_bytes(content)
    assert _train(shapes, out, "--resume") == 2
    _one_line(capsys, "cannot resume from", "last.pth")
    assert (out / "last.pth").read_bytes() == content  # untouched


def test_resume_of_a_foreign_torch_file_names_what_is_missing(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    import torch

    torch.save({"weights": torch.zeros(2)}, out / "last.pth")
    assert _train(shapes, out, "--resume") == 2
    _one_line(capsys, "not a tdm-edge training checkpoint", "'model'")


def test_eval_on_the_folder_that_holds_the_splits(shapes, tmp_path, capsys):
    """``--data data/shapes`` (train/ and val/ inside) names the splits, not "class folder train has no images"."""
    from tdm_edge.train.trained import demo_model_path

    assert main(["eval", "--checkpoint", str(demo_model_path()), "--data", str(shapes)]) == 2
    _one_line(capsys, "holds the splits train/, val/", str(shapes / "val"))

