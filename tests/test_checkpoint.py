"""Offline checkpoint loading: formats, wrappers and one-line errors."""

import pytest
import torch
from safetensors.torch import save_file

from tdm_edge.checkpoint import load_checkpoint, read_state_dict
from tdm_edge.errors import UsageError
from tdm_edge.reduce.models import create_model

from .conftest import tiny_vit


@pytest.fixture
def source():
    return tiny_vit(seed=7)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("layout", ["plain", "deit", "ddp", "safetensors"])
def test_every_layout_loads_the_same_weights(tmp_path, source, layout):
    state = source.state_dict()
    if layout == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "w.pth"
        obj = {"plain": state, "deit": {"model": state, "epoch": 300},
               "ddp": {"state_dict": {"module." + k: v for k, v in state.items()}}}[layout]
        torch.save(obj, path)
    target = tiny_vit(seed=1)
    assert not _same_weights(source, target)
    load_checkpoint(target, path)
    assert _same_weights(source, target)


def test_truncated_file_is_one_line(tmp_path, source):
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UsageError, match="cannot read checkpoint") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="checkpoint not found"):
        read_state_dict(tmp_path / "nope.pth")


def test_wrong_architecture_names_the_first_difference(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(tiny_vit(embed_dim=48).state_dict(), path)
    with pytest.raises(UsageError, match=r"does not fit .*shape mismatch") as info:
        load_checkpoint(tiny_vit(), path, "tiny")
    assert "\n" not in str(info.value)


def test_non_tensor_pickle_is_refused(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"model": {"a": 1}}, path)
    with pytest.raises(UsageError, match="no state_dict of tensors"):
        read_state_dict(path)


def test_create_model_loads_before_patching(tmp_path):
    model = create_model("deit_tiny_patch16_224", keep_rate=1.0)
    path = tmp_path / "deit_t.pth"
    torch.save({"model": model.state_dict()}, path)
    pruned = create_model("deit_tiny_patch16_224", keep_rate=0.7, checkpoint=path)
    assert _same_weights(model, pruned)
    assert pruned.tdm_schedule.stage_tokens == [197, 139, 98, 69]
