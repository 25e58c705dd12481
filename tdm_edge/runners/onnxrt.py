"""Run an ONNX model in ONNX Runtime through the shared :class:`~tdm_edge.runners.base.Runner` interface.

``onnxruntime`` is imported when the runner is activated, so the package imports without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import UsageError, first_line
from .base import Runner, TensorMeta

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
              "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


class OnnxRuntimeRunner(Runner):
    """Inference with an ``onnxruntime.InferenceSession``.

    Args:
        model: a path to an ``.onnx`` file, its bytes, or an ``onnx.ModelProto``.
        providers: execution providers, default CPU only.
        intra_op_threads: threads inside one operator (``None``: ONNX Runtime's default, all cores).
        inter_op_threads: threads across operators (``None``: default).
        profile_prefix: turn on ONNX Runtime's profiler; the JSON trace is written when the runner deactivates
            and its path kept in ``profile_path``.
    """

    def __init__(self, model, providers: Sequence[str] = ("CPUExecutionProvider",),
                 intra_op_threads: int | None = None, inter_op_threads: int | None = None,
                 profile_prefix: str | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.model = model
        self.providers = list(providers)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.profile_prefix = profile_prefix
        self.profile_path: str | None = None
        self.session = None
        self._inputs: list[TensorMeta] = []
        self._output_names: list[str] = []

    def activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            reason = "not installed" if getattr(err, "name", None) == "onnxruntime" else f"does not import ({err})"
            raise UsageError(f"ONNX Runtime is {reason}: pip install 'tdm-edge[ort]' (on a Jetson: NVIDIA's "
                             "onnxruntime-gpu wheel, or run an .engine on TensorRT)") from None

        options = ort.SessionOptions()
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads is not None:
            options.inter_op_num_threads = self.inter_op_threads
        if self.profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = self.profile_prefix
        source = self.model
        if hasattr(source, "SerializeToString"):
            source = source.SerializeToString()
        elif isinstance(source, (str, os.PathLike)):
            source = os.fspath(source)
            if not os.path.isfile(source):
                raise UsageError(f"ONNX model not found: {source}")
        try:
            self.session = ort.InferenceSession(source, options, providers=self.providers)
        except Exception as err:  # ORT raises its own exception types for unreadable or invalid models
            raise UsageError(f"ONNX Runtime cannot load the model: {first_line(err)}") from None
        self._inputs = [TensorMeta(i.name, np.dtype(_ORT_TYPES.get(i.type, np.float32)),
                                   tuple(d if isinstance(d, int) else None for d in i.shape))
                        for i in self.session.get_inputs()]
        self._output_names = [o.name for o in self.session.get_outputs()]

    def deactivate_impl(self) -> None:
        if self.profile_prefix is not None and self.session is not None:
            self.profile_path = self.session.end_profiling()
        self.session = None

    def input_metadata_impl(self) -> Sequence[TensorMeta]:
        return self._inputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self._output_names, dict(feed))
        return dict(zip(self._output_names, outputs))
