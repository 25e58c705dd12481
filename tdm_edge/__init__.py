"""tdm-edge: token-pruned Vision Transformers from timm to ONNX, TensorRT and a camera loop.

Pipeline stages, one module each:
  merge.py      pure tensor ops: class-token importance, decoupling, DPC-kNN clustering, bipartite matching
  schedule.py   fixed per-stage token counts, computed once when a model is patched
  patch.py      turns any timm VisionTransformer into a BAT / EViT / ToMe / random-drop model in place
  models.py     our registered timm variants (tdm_deit_small_patch16_224, ...)
  checkpoint.py offline weight loading (.pth/.pt/.safetensors)
  flops.py      GMAC counter, counted the way the BAT paper counts
  export.py     ONNX export with static token counts, verification, graph clean-up
  check.py      TensorRT ONNX-parser compatibility linter
  runners/      one Runner interface for PyTorch, ONNX Runtime and TensorRT
  cli.py        the `tdm-edge` command
"""

__version__ = "0.1.0"
