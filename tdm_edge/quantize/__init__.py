"""INT8: explicit Q/DQ graphs for TensorRT, a fast INT8 graph for ONNX Runtime on CPUs, and FP32-vs-INT8 reports.

- :mod:`.recipes`: what to quantize and how (small JSON files in ``calibration/``);
- :mod:`.data`: calibration frames from an image folder, a video (sampled evenly) or synthetic scenes;
- :mod:`.calibrate`: ONNX Runtime's quantizer with the recipe, the merge path left in float;
- :mod:`.compare`: top-1/top-5 agreement, logit cosine and the token decisions that changed, per stage.

Nothing here imports onnx, onnxruntime or cv2 at module import time.
"""

from __future__ import annotations


def quantize_for_cpu(model_path, output):
    """``tdm-edge calibrate MODEL --target cpu -o OUTPUT``: the fastest INT8 for ONNX Runtime CPU (no images
    needed); returns the :class:`~tdm_edge.quantize.calibrate.CalibrationReport`. Used by ``tdm-edge bench``."""
    from .calibrate import calibrate, load_fp32
    from .recipes import find_recipe

    proto, meta = load_fp32(model_path)
    return calibrate(model_path, output, target="cpu", recipe=find_recipe(meta.get("model", {}).get("name")),
                     images=None, proto=proto, meta=meta)
