import hashlib

import pytest

from tdm_edge.cli import main
from tdm_edge.train.dataset import SHAPES, make_dataset


def _digest(root):
    files = sorted(p for p in root.rglob("*.png"))
    return [(p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = make_dataset(tmp_path / "a", classes=3, per_class=3, img_size=24, seed=7, progress=False)
    b = make_dataset(tmp_path / "b", classes=3, per_class=3, img_size=24, seed=7, progress=False)
    c = make_dataset(tmp_path / "c", classes=3, per_class=3, img_size=24, seed=8, progress=False)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert [name for name, _ in da] == [f"{s}/{s}_{i:05d}.png" for s in SHAPES[:3] for i in range(3)]
    assert da == db
    assert [n for n, _ in dc] == [n for n, _ in da]
    assert all(x != y for (_, x), (_, y) in zip(da, dc))  # every image differs under another seed


def test_image_i_does_not_depend_on_per_class(tmp_path):
    small = _digest(make_dataset(tmp_path / "s", classes=2, per_class=2, img_size=24, seed=3, progress=False))
    large = _digest(make_dataset(tmp_path / "l", classes=2, per_class=4, img_size=24, seed=3, progress=False))
    assert set(small) <= set(large)


def test_refuses_a_non_empty_folder_and_bad_counts(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("mine")
    assert main(["make-dataset", str(tmp_path / "d"), "--per-class", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an empty folder" in err
    assert (tmp_path / "d" / "keep.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as exited:  # refused while parsing: the option's bounds
        main(["make-dataset", str(tmp_path / "e"), "--classes", "9", "--quiet"])
    assert exited.value.code == 2 and "--classes must be in 2..8" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
