"""One BAT stage as one PyTorch op, ``torch.ops.tdm_edge.bat_merge``: the fused CUDA kernel on a GPU.

``bat_merge(x [B, N, C], importance [B, N-1], n, c, keep, pairs, clusters, knn) -> [B, 1 + keep - pairs + clusters, C]``
computes exactly :func:`tdm_edge.reduce.patch.reduce_tokens` for a BAT stage (plugins/tdm_merge mirrors it step for
step). Implementations:

- CUDA tensors: the kernel of plugins/tdm_merge, built on first use with ``torch.utils.cpp_extension.load`` (needs
  nvcc and a source checkout; the build is cached by PyTorch). If it cannot be built, the decomposed reference runs
  instead, with one warning saying why.
- any other device: the decomposed reference (the ops of :mod:`tdm_edge.reduce.merge`).

The op has no backward: it is for inference (the torch-cuda backend); training uses the decomposed stage.
:func:`apply` switches a model's BAT stages to the op for good (what ``TorchCudaRunner`` calls);
:func:`fused_stages` routes every BAT stage of patched models through it while active (the ONNX export,
``--merge plugin``, traces it that way into one ``TdmBatMerge`` plugin node per stage).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

import torch

from . import patch as patch_module
from .patch import AttentionOutput, reduce_tokens as reference_stage
from .schedule import Stage

OP_NAME = "tdm_edge::bat_merge"
KERNEL_DIR = Path(__file__).resolve().parents[2] / "plugins" / "tdm_merge"  # a source checkout's plugins/


def stage_from_sizes(n: int, c: int, keep: int, pairs: int, clusters: int, knn: int) -> Stage:
    """The BAT :class:`Stage` that the op's sizes describe (``c`` is not part of a Stage)."""
    return Stage(block=0, method="bat", n_in=n, n_out=1 + keep - pairs + clusters, keep=keep, pairs=pairs,
                 clusters=clusters, knn=knn)


@torch.library.custom_op(OP_NAME, mutates_args=())
def bat_merge(x: torch.Tensor, importance: torch.Tensor, n: int, c: int, keep: int, pairs: int, clusters: int,
              knn: int) -> torch.Tensor:
    """One BAT stage, decomposed (the reference; every device without a kernel).

    Args:
        x: tokens ``[B, n, c]``, class token first.
        importance: class attention ``[B, n-1]``.
        n, c, keep, pairs, clusters, knn: the stage's fixed sizes (:class:`Stage` fields, plus ``c`` channels).
    Returns:
        ``[B, 1 + keep - pairs + clusters, c]``: CLS, merged pairs, unmatched attentive, clusters.
    """
    stage = stage_from_sizes(n, c, keep, pairs, clusters, knn)
    return reference_stage(x, AttentionOutput(None, importance, None), stage).contiguous()  # [B, N', C]


@bat_merge.register_fake
def _(x, importance, n, c, keep, pairs, clusters, knn):
    return x.new_empty(x.shape[0], 1 + keep - pairs + clusters, c)


@functools.lru_cache(maxsize=1)
def cuda_extension():
    """The compiled kernel (a module with ``bat_merge``), or ``None`` with the reason warned once."""
    sources = [KERNEL_DIR / "batMergeTorch.cpp", KERNEL_DIR / "batMergeKernel.cu"]
    if not all(s.is_file() for s in sources):
        warnings.warn(f"tdm_edge::bat_merge: kernel sources not found under {KERNEL_DIR} (a source checkout is "
                      "needed); running the decomposed stage")
        return None
    try:
        from torch.utils.cpp_extension import load

        # --fmad=false: rounds like the CPU build of the same phases (docs/kernel.md, "Rounding")
        return load(name="tdm_bat_merge", sources=[str(s) for s in sources], extra_include_paths=[str(KERNEL_DIR)],
                    extra_cuda_cflags=["--fmad=false"], verbose=False)
    except Exception as err:  # a failed build (no nvcc, compiler error) falls back, and says so once
        warnings.warn(f"tdm_edge::bat_merge: building the CUDA kernel failed ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}); running the decomposed stage")
        return None


@bat_merge.register_kernel("cuda")
def _(x, importance, n, c, keep, pairs, clusters, knn):
    ext = cuda_extension() if x.dtype in (torch.float32, torch.float16) else None
    if ext is None:
        stage = stage_from_sizes(n, c, keep, pairs, clusters, knn)
        return reference_stage(x, AttentionOutput(None, importance, None), stage).contiguous()
    return ext.bat_merge(x, importance.to(x.dtype), n, c, keep, pairs, clusters, knn)


def stage_sizes(stage: Stage, channels: int) -> tuple[int, int, int, int, int, int]:
    """The op's size arguments for one BAT stage: ``(n, c, keep, pairs, clusters, knn)``."""
    return stage.n_in, channels, stage.keep, stage.pairs, stage.clusters, stage.knn


def fused_stage(x: torch.Tensor, importance: torch.Tensor, stage: Stage) -> torch.Tensor:
    """``reduce_tokens`` for one BAT stage through the op: ``[B, N, C] -> [B, stage.n_out, C]``."""
    return torch.ops.tdm_edge.bat_merge(x, importance, *stage_sizes(stage, int(x.shape[-1])))


@contextlib.contextmanager
def fused_stages():
    """While active, every BAT stage of a patched model runs as ``tdm_edge::bat_merge`` (other methods unchanged)."""
    original = patch_module.reduce_tokens

    def reduce_tokens(x: torch.Tensor, out: AttentionOutput, stage: Stage) -> torch.Tensor:
        if stage.method != "bat":
            return original(x, out, stage)
        return fused_stage(x, out.importance, stage)

    patch_module.reduce_tokens = reduce_tokens
    try:
        yield
    finally:
        patch_module.reduce_tokens = original


class FusedReductionBlock(patch_module.ReductionBlock):
    """A :class:`~tdm_edge.reduce.patch.ReductionBlock` whose BAT stage runs as ``tdm_edge::bat_merge`` (set by
    :func:`apply`); every other stage, and ToMe's token sizes, as before."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.tdm_stage is None or self.tdm_stage.method != "bat" or self.tdm_token_sizes:
            return super().forward(x, *args, **kwargs)
        with fused_stages():
            return super().forward(x, *args, **kwargs)


def apply(model: torch.nn.Module) -> int:
    """Switch the BAT stages of a patched model to the fused op, in place (the torch-cuda runner's seam).

    Returns:
        How many stages now run fused (0 for a model without BAT stages). Calling it again changes nothing.
    """
    count = 0
    for blk in getattr(model, "blocks", ()):
        if isinstance(blk, patch_module.ReductionBlock) and blk.tdm_stage is not None and blk.tdm_stage.method == "bat":
            blk.__class__ = FusedReductionBlock
            count += 1
    return count
