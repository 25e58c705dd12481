"""Run a PyTorch module through the shared :class:`~tdm_edge.runners.base.Runner` interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .base import Runner, RunnerError, TensorMeta


def vit_input_metadata(model: torch.nn.Module, name: str = "input", batch: int | None = None) -> list[TensorMeta]:
    """``[{name: float32[batch, C, H, W]}]`` for a timm ViT with a fixed image size (``batch=None``: dynamic)."""
    embed = getattr(model, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if size is None:
        raise RunnerError(f"cannot tell the input shape of {type(model).__name__}; pass input_metadata")
    chans = embed.proj.in_channels
    return [TensorMeta(name, np.dtype(np.float32), (batch, chans, *size))]


class PyTorchRunner(Runner):
    """Inference with a ``torch.nn.Module`` in eval mode under ``torch.inference_mode``.

    Args:
        model: the module; its positional arguments are the inputs in ``input_metadata`` order.
        input_metadata: the inputs; default for a timm ViT: ``input: float32[?, C, H, W]``.
        output_names: names of the module's outputs (a tensor or a tuple of tensors), default ``("logits",)``.
        device: where to run (``"cpu"``, ``"cuda"``); CUDA is synchronised before the time is taken.
    """

    def __init__(self, model: torch.nn.Module, input_metadata: Sequence[TensorMeta] | None = None,
                 output_names: Sequence[str] = ("logits",), device: str | torch.device = "cpu",
                 name: str | None = None) -> None:
        super().__init__(name)
        self.model = model
        self.device = torch.device(device)
        self._inputs = list(input_metadata) if input_metadata is not None else vit_input_metadata(model)
        self.output_names = tuple(output_names)
        self._was_training = False

    def activate_impl(self) -> None:
        self._was_training = self.model.training
        self.model.eval().to(self.device)

    def deactivate_impl(self) -> None:
        self.model.train(self._was_training)

    def input_metadata_impl(self) -> Sequence[TensorMeta]:
        return self._inputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feed[m.name])).to(self.device) for m in self._inputs]
        with torch.inference_mode():
            out = self.model(*args)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if len(outs) != len(self.output_names):
            raise RunnerError(f"the model returned {len(outs)} outputs for {len(self.output_names)} output names "
                              f"{list(self.output_names)}")
        return {n: t.detach().cpu().numpy() for n, t in zip(self.output_names, outs)}
