"""Stage 1, token reduction on a timm ViT: BAT, EViT, ToMe and a random-drop control.

  merge.py     pure tensor ops on ``[B, N, C]``: class-token importance, decoupling, DPC-kNN, bipartite matching
  schedule.py  fixed per-stage token counts, computed once when a model is patched
  patch.py     turns a timm VisionTransformer into a reducing one in place (``patch_vit``)
  models.py    our registered timm variants (``tdm_deit_small_patch16_224``, ...) and ``create_model``
  flops.py     GMAC counter, counted the way the BAT paper counts

Importing this package registers the ``tdm_*`` variants with timm.
"""

from .models import create_model
from .patch import patch_vit

__all__ = ["create_model", "patch_vit"]
