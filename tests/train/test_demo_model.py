"""The shipped demo model: self-describing, and >= 80 % top-1 on a freshly generated set of an unseen seed."""

import json

from tdm_edge.cli import main
from tdm_edge.train.dataset import class_names, make_dataset
from tdm_edge.train.trained import demo_model_path, read_record


def test_demo_model_is_shipped_small_and_describes_itself():
    path = demo_model_path()
    assert path.is_file() and path.stat().st_size <= 25 * 2**20
    record = read_record(path)
    assert record["labels"] == sorted(class_names())  # make-dataset's defaults, in ImageFolder order
    assert record["reduction"]["method"] == "bat" and record["arch"]["img_size"] == 56
    assert (path.parent / "labels.txt").read_text().split() == record["labels"]


def test_demo_model_classifies_fresh_shapes(tmp_path, capsys, one_thread):
    record = read_record(demo_model_path())
    data = make_dataset(tmp_path / "held_out", per_class=20, img_size=56, seed=424242, progress=False)
    assert main(["eval", "--data", str(data), "--json"]) == 0  # no --checkpoint: the demo model
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 120 and result["labels"] == record["labels"]
    assert result["top1"] >= 80.0
    assert result["stage_tokens"] == [197, 139, 98, 69] and result["gmacs"] < result["unpruned_gmacs"]
