import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tdm_edge.train.train import TrainConfig, keep_rate_at, train
from tdm_edge.train.trained import load_trained, read_record

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[2]


def _config(shapes, out, **kw) -> TrainConfig:
    settings = dict(model=TINY, data=str(shapes), output=str(out), method="bat", keep_rate=0.7, epochs=2,
                    batch_size=8, lr=1e-3, weight_decay=0.05, mixup=0.0, cutmix=0.0, progress=False)
    settings.update(kw)
    return TrainConfig(**settings)


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


class Killed(Exception):
    pass


def test_resume_after_a_kill_continues_with_the_same_optimizer_state(shapes, tmp_path, one_thread):
    # Mixup/cutmix on: the resumed run must also replay the augmentation randomness of the epoch it redoes.
    full = train(_config(shapes, tmp_path / "full", mixup=0.8, cutmix=1.0))

    def kill(epoch, step):
        if epoch == 1 and step == 1:  # killed mid-way through the second epoch: only epoch 0 is on disk
            raise Killed

    with pytest.raises(Killed):
        train(_config(shapes, tmp_path / "cut", mixup=0.8, cutmix=1.0), on_step=kill)
    saved = _load(tmp_path / "cut" / "last.pth")
    assert saved["epoch"] == 0 and len(saved["history"]) == 1
    steps = []
    resumed = train(_config(shapes, tmp_path / "cut", mixup=0.8, cutmix=1.0, resume=True),
                    on_step=lambda e, s: steps.append((e, s)))
    assert steps == [(1, 0), (1, 1), (1, 2)]  # 24 images / batch 8: epoch 1 only, not epoch 0 again
    a, b = _load(tmp_path / "full" / "last.pth"), _load(tmp_path / "cut" / "last.pth")
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys() and len(state_a) > 10
    for key in state_a:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state_a[key][name], state_b[key][name]), (key, name)
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    assert a["scheduler"] == b["scheduler"]
    assert resumed["history"] == full["history"]


def test_two_process_torchrun_equals_one_process_with_the_same_global_batch(shapes, tmp_path, one_thread):
    # No augmentation (the whole image, no flip) and the same sample order: two gloo processes with batch 4
    # average the same gradients as one process with batch 8. SGD, not AdamW: Adam divides by the root of tiny
    # second moments, which turns float-rounding differences of near-zero gradients into lr-sized steps.
    common = ["--model", TINY, "--data", str(shapes), "--epochs", "1", "--lr", "0.05", "--opt", "sgd", "--mixup", "0",
              "--cutmix", "0", "--scale", "1,1", "--hflip", "0", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launchers = {"ddp": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"],
                 "one": [sys.executable, "-m"]}  # both in fresh processes: no state left by other tests
    for name, launcher in launchers.items():
        proc = subprocess.run([*launcher, "tdm_edge.cli", "train", *common, "--batch-size", "4" if name == "ddp" else "8",
                               "--output", str(tmp_path / name)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=240)
        assert proc.returncode == 0, proc.stderr[-2000:]
    ddp, one = _load(tmp_path / "ddp" / "last.pth"), _load(tmp_path / "one" / "last.pth")
    assert ddp["world_size"] == 2 and one["world_size"] == 1
    for name, value in one["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert ddp["history"][0]["images"] == one["history"][0]["images"] == 12  # every val image once over 2 ranks
    assert ddp["history"][0]["top1"] == one["history"][0]["top1"]


def test_the_saved_model_describes_itself_and_eval_reproduces_its_accuracy(shapes, tmp_path, one_thread, capsys):
    import json

    from tdm_edge.cli import main

    result = train(_config(shapes, tmp_path / "run", epochs=1))
    path = tmp_path / "run" / "model.safetensors"
    record = read_record(path)
    assert record["labels"] == ["circle", "square", "triangle"]
    assert record["arch"]["embed_dim"] == 32 and record["reduction"]["method"] == "bat"
    model, _ = load_trained(path)
    capsys.readouterr()
    assert model.tdm_schedule.stage_tokens == [65, 46, 33, 24]
    assert main(["eval", "--checkpoint", str(path), "--data", str(shapes / "val"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["top1"] == result["history"][0]["top1"] and out["images"] == 12
    assert out["stage_tokens"] == [65, 46, 33, 24] and out["gmacs"] < out["unpruned_gmacs"]
    assert main(["eval", "--checkpoint", str(path), "--data", str(shapes / "val"), "--method", "none"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("top-1: ") and "method none" in text and text.endswith("tokens 65\n")  # unpruned


def test_keep_rate_warmup_holds_then_ramps_to_the_target():
    rates = [keep_rate_at(e, 0.5, (2, 4)) for e in range(8)]
    assert rates[:2] == [1.0, 1.0] and rates[6:] == [0.5, 0.5]
    assert rates[2] == 1.0 and all(a > b for a, b in zip(rates[2:6], rates[3:7]))
    assert keep_rate_at(0, 0.7, (0, 0)) == 0.7
