import pytest
import torch

from tdm_edge.train.dataset import make_dataset

TINY = "tdm_vit_nano_patch4_32"


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A tiny train/val split: 3 classes, 8 + 4 images per class, 32 px (the nano model's size)."""
    root = tmp_path_factory.mktemp("shapes")
    make_dataset(root / "train", classes=3, per_class=8, img_size=32, seed=0, progress=False)
    make_dataset(root / "val", classes=3, per_class=4, img_size=32, seed=1, progress=False)
    return root


@pytest.fixture
def one_thread():
    """Training on a shared CPU is several times faster on one thread; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
