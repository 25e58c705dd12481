"""The torch-cuda backend: a PyTorch model on a CUDA GPU in fp16 with static shapes, replayed as a CUDA graph.

The backend for GPUs without TensorRT and the measuring stick for TensorRT on GPUs, on the shared
:class:`~tdm_edge.runners.base.Runner` interface::

    with TorchCudaRunner(model, fp16=True, cuda_graph=True) as runner:
        logits = runner.infer({"input": batch})["logits"]   # float32, like every other runner

Activation copies the model to the GPU (fp16: weights and activations in half precision) and switches its BAT
stages to the fused merge op when ``tdm_edge.reduce.fused`` is importable (:func:`apply_fused_merge`). Shapes are
static: the static input is allocated for the batch given (``batch=N``) or, by default, for the first feed's, then
the model is warmed up on a side stream and one CUDA graph captured; a feed of another batch size allocates and
captures again. ``infer`` copies the feed into the static input, replays the graph and returns the static output.
It uses torch's CUDA only (no pycuda in this process).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..errors import UsageError
from .base import Runner, TensorMeta
from .pytorch import vit_input_metadata

FUSED_MODULE = "tdm_edge.reduce.fused"
WARMUP_ITERS = 3  # torch's CUDA-graph recipe: warm up on a side stream before capturing


def apply_fused_merge(model: torch.nn.Module, required: bool = False) -> int:
    """Switch the model's merge stages to the fused CUDA op, if :data:`FUSED_MODULE` is there.

    The seam for the fused kernel: that module's ``apply(model) -> int`` patches the model's reducing blocks in
    place to call the fused op and returns how many stages it switched. Without the module this returns 0 (or
    raises :class:`UsageError` when ``required``), and the decomposed merge runs.

    Args:
        model: the reduced timm ViT.
        required: fail instead of falling back to the decomposed merge.
    """
    try:
        fused = importlib.import_module(FUSED_MODULE)
    except ImportError as err:
        if err.name not in (FUSED_MODULE, FUSED_MODULE.rsplit(".", 1)[0]) or required:
            raise UsageError(f"the fused merge op is not available: {err}") from None
        return 0
    return int(fused.apply(model))


class TorchCudaRunner(Runner):
    """Inference with a ``torch.nn.Module`` on CUDA, fp16 and CUDA graphs by default.

    Args:
        model: the module (a timm ViT, reduced or not); moved to the GPU and, for fp16, converted to half.
        fp16: run in half precision (weights and activations); outputs are returned as float32.
        cuda_graph: capture one CUDA graph at activation and replay it on every ``infer`` (static shapes).
        batch: the static batch size (default: the first feed's; another batch later captures again).
        fused_merge: "auto" (use the fused op if importable), True (require it) or False (decomposed merge).
        input_metadata: the inputs (default for a timm ViT: ``input: float32[batch, C, H, W]``).
        output_names: names of the module's outputs, default ``("logits",)``.
        device: the CUDA device.
    """

    def __init__(self, model: torch.nn.Module, fp16: bool = True, cuda_graph: bool = True, batch: int | None = None,
                 fused_merge: bool | str = "auto", input_metadata: Sequence[TensorMeta] | None = None,
                 output_names: Sequence[str] = ("logits",), device: str | torch.device = "cuda",
                 name: str | None = None) -> None:
        super().__init__(name)
        self.model = model
        self.fp16, self.cuda_graph, self.fused_merge = fp16, cuda_graph, fused_merge
        self.device = torch.device(device)
        self._inputs = list(input_metadata) if input_metadata is not None else vit_input_metadata(model, batch=batch)
        if any(d is None for m in self._inputs for d in m.shape[1:]):
            raise UsageError("the torch-cuda backend needs static input shapes (only the batch may be left open)")
        self.output_names = tuple(output_names)
        self.fused_stages = 0
        self._static_in: list[torch.Tensor] = []
        self._static_out: tuple[torch.Tensor, ...] = ()
        self._graph = None
        self._module: torch.nn.Module | None = None

    def activate_impl(self) -> None:
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise UsageError("the torch-cuda backend needs a CUDA GPU (torch.cuda.is_available() is False here)")
        dtype = torch.float16 if self.fp16 else torch.float32
        # a copy: the caller's model keeps its device, its fp32 weights and its decomposed merge
        self._module = copy.deepcopy(self.model).eval().to(self.device, dtype)
        if self.fused_merge:
            self.fused_stages = apply_fused_merge(self._module, required=self.fused_merge is True)
        if all(m.shape[0] is not None for m in self._inputs):
            self._prepare([tuple(m.shape) for m in self._inputs])

    def _prepare(self, shapes: list[tuple[int, ...]]) -> None:
        """Allocate the static inputs for ``shapes`` and capture the graph (if ``cuda_graph``)."""
        dtype = torch.float16 if self.fp16 else torch.float32
        self._graph, self._static_out = None, ()
        self._static_in = [torch.zeros(shape, device=self.device, dtype=dtype) for shape in shapes]
        if self.cuda_graph:
            self._capture()

    def _forward(self) -> tuple[torch.Tensor, ...]:
        out = self._module(*self._static_in)
        outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if len(outs) != len(self.output_names):
            raise UsageError(f"the model returned {len(outs)} outputs for {len(self.output_names)} output names")
        return outs

    def _capture(self) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(WARMUP_ITERS):
                self._forward()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self._graph):
            self._static_out = self._forward()
        torch.cuda.synchronize(self.device)

    def deactivate_impl(self) -> None:
        self._graph, self._static_in, self._static_out, self._module = None, [], (), None
        torch.cuda.empty_cache()

    def input_metadata_impl(self) -> Sequence[TensorMeta]:
        return self._inputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        shapes = [tuple(feed[m.name].shape) for m in self._inputs]
        if shapes != [tuple(t.shape) for t in self._static_in]:
            self._prepare(shapes)  # the first feed, or another batch size
        with torch.inference_mode():
            for meta, static in zip(self._inputs, self._static_in):
                static.copy_(torch.from_numpy(np.ascontiguousarray(feed[meta.name])), non_blocking=False)
            if self._graph is not None:
                self._graph.replay()
                outs = self._static_out
            else:
                outs = self._forward()
            result = {n: t.float().cpu().numpy() for n, t in zip(self.output_names, outs)}  # .cpu() synchronises
        return result
