import pytest


def tiny_vit(img_size: int = 32, patch_size: int = 4, depth: int = 4, embed_dim: int = 32, num_heads: int = 2,
             num_classes: int = 10, seed: int = 0) -> "VisionTransformer":
    """A randomly initialised ViT small enough for unit tests: (32/4)^2 + 1 = 65 tokens by default."""
    import torch  # here, not at the top: the device-side suite (tests/device, Python 3.8) runs without torch
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, num_classes=num_classes).eval()


@pytest.fixture
def vit():
    return tiny_vit()
