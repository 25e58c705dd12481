"""The shipped demo model: self-describing, and its model card's held-out top-1 reproduced on a regenerated set.

The issue's target is >= 80 % held-out top-1 on a set of an unseen seed; the card's set (seed 100, 3,000 images)
gives 81.2 %. The test regenerates that set from the seed and size the card states and asserts the card's figure
and the target.
"""

import json
import re

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


def test_eval_reproduces_the_model_cards_held_out_accuracy(tmp_path, capsys, one_thread):
    card = (demo_model_path().parent / "MODEL_CARD.md").read_text()
    seed = int(re.search(r"seed (\d+), never used in training", card).group(1))
    per_class = int(re.search(r"make-dataset H --per-class (\d+) --seed", card).group(1))
    recorded = float(re.search(r"top-1: ([0-9.]+) %", card).group(1))
    data = make_dataset(tmp_path / "held_out", per_class=per_class, img_size=56, seed=seed, progress=False)
    assert main(["eval", "--data", str(data), "--json"]) == 0  # no --checkpoint: the demo model
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 6 * per_class and result["labels"] == read_record(demo_model_path())["labels"]
    assert result["top1"] == recorded
    assert result["top1"] >= 80  # the target
    assert result["stage_tokens"] == [197, 139, 98, 69] and result["gmacs"] < result["unpruned_gmacs"]
