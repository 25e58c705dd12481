"""One runner interface for every backend: ``with Runner(...) as r: outputs = r.infer(feed)``.

``PyTorchRunner`` and ``OnnxRuntimeRunner`` live here; TensorRT's runner comes with the TensorRT backend.
ONNX Runtime (and later TensorRT) are imported only when a runner of theirs is activated.
"""

from .base import FeedError, Runner, RunnerError, TensorMeta, check_feed
from .onnxrt import OnnxRuntimeRunner
from .pytorch import PyTorchRunner, vit_input_metadata

__all__ = ["FeedError", "OnnxRuntimeRunner", "PyTorchRunner", "Runner", "RunnerError", "TensorMeta", "check_feed",
           "vit_input_metadata"]
