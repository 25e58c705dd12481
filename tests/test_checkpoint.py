"""Offline checkpoint loading: formats, wrappers and one-line errors."""

import hashlib
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tdm_edge.checkpoint import load_checkpoint, read_state_dict
from tdm_edge.errors import UsageError
from tdm_edge.provenance import weights_of
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
    with pytest.raises(UsageError, match="is a damaged or truncated PyTorch file") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)


class Opaque:
    """A class a weights-only load refuses to unpickle."""


def _bad_checkpoints(tmp_path, source):
    (tmp_path / "dir.pth").mkdir()
    (tmp_path / "random.pth").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    (tmp_path / "text.safetensors").write_text("this is a text file, not a tensor file\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"model": source.state_dict(), "extra": Opaque()}, tmp_path / "object.pth")
    torch.save(source, tmp_path / "module.pth")  # a whole pickled model, not its state_dict
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"weights": np.zeros(3)}, f)


@pytest.mark.parametrize("name, message", [
    ("dir.pth", "is a directory; give the weights file inside it"),
    ("random.pth", "is not a PyTorch (.pth/.pt) or safetensors file (it starts with unrecognised binary data)"),
    ("text.safetensors", "is named .safetensors but is not one (no safetensors header; it starts with text)"),
    ("empty.pt", "is empty"),
    ("object.pth", "holds pickled Python objects, not only tensors (it needs tests.test_checkpoint.Opaque); "
                   "tdm-edge runs no pickled code: save model.state_dict() instead"),
    ("module.pth", "holds pickled Python objects, not only tensors (it needs timm.models.vision_transformer."
                   "VisionTransformer)"),
    ("plain.pkl", "is a pickle but not a PyTorch checkpoint of tensors"),
])
def test_bad_files_say_what_is_wrong_in_one_line(tmp_path, source, name, message):
    _bad_checkpoints(tmp_path, source)
    with pytest.raises(UsageError) as info:
        read_state_dict(tmp_path / name)
    text = str(info.value)
    assert message in text and str(tmp_path / name) in text
    assert "\n" not in text and "weights_only" not in text  # never PyTorch's advice to unpickle anyway


def test_format_comes_from_the_content_not_the_name(tmp_path, source):
    path = tmp_path / "w.safetensors"
    torch.save(source.state_dict(), path)  # a PyTorch file under a safetensors name still loads
    target = tiny_vit(seed=1)
    load_checkpoint(target, path)
    assert _same_weights(source, target)


def test_loading_records_the_file_for_provenance(tmp_path, source):
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    target = tiny_vit(seed=1)
    assert weights_of(target) == "random"
    load_checkpoint(target, path)
    assert weights_of(target) == {"file": "w.pth", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


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
