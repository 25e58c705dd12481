"""``export --precision fp16``: an fp16 graph whose token selection and LayerNorms stay in fp32 by explicit Casts.

TensorRT 11 builds only in the ONNX's own types (strongly typed networks), and on 10.12+ the FP16 builder flag is
deprecated: an fp16 ONNX is the precision path that works on every version. Exporting one is a PyTorch-side
affair, so the Casts are where the reference says they are:

- the model is a half-precision copy (:func:`half_copy`; the caller's model is not touched), its input cast to
  fp16 and its logits back to fp32 at the graph's edges (:class:`HalfEdges`): runners feed and read fp32 as
  with an fp32 export, and the metadata records the dtypes;
- every LayerNorm runs in fp32 (a Cast before, its fp32 weights, a Cast after): the variance of a residual
  stream whose values exceed 256 overflows fp16 (TensorRT warns about exactly this);
- while tracing, :func:`fp32_selection` wraps the functions of :mod:`tdm_edge.reduce.merge` that select and
  combine tokens so their inputs are cast to fp32 and their token outputs back to fp16: the class-attention
  importance (computed from fp32 casts of q and k, not read off the fp16 softmax), the sorts and top-k, the
  matching's cosine scores, DPC-kNN's distances and densities, and the weighted means they feed. merge.py itself
  stays pure and dtype-agnostic; the wrappers exist only for the ``with`` block.

The selection path is also what :func:`tdm_edge.lint.precision.fp32_layers` lists for a weakly typed build (FP16
builder flag): the ONNX nodes whose TensorRT layers must be pinned to fp32, recorded in the metadata.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..reduce import merge

PRECISIONS = ("fp32", "fp16")
# merge functions wrapped while an fp16 model is traced (tome_merge and merge_matched call them by module name)
WRAPPED = ("class_attention", "decouple", "bipartite_match", "cluster_assignment", "combine", "weighted_merge")


def _up(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` as fp32 (one Cast in the graph); fp32 tensors, integer tensors and ``None`` unchanged."""
    return t.float() if t is not None and t.is_floating_point() and t.dtype != torch.float32 else t


@contextlib.contextmanager
def fp32_selection() -> Iterator[None]:
    """Run token selection and combination in fp32 for an fp16 model, for the duration of the ``with`` block.

    Inputs are cast up; tokens come back in the dtype they came in (selections are indices or fp32 0/1
    matrices, importances stay fp32). On an fp32 model every cast is a no-op, so nothing changes.
    """
    originals = {name: getattr(merge, name) for name in WRAPPED}

    def class_attention(q, k, scale, bias=None):  # q, k [B, H, N, d]: only the class row of q is cast
        return originals["class_attention"](_up(q[:, :, :1]), _up(k), scale, _up(bias))  # [B, N-1] fp32

    def decouple(importance, keep):
        return originals["decouple"](_up(importance), keep)

    def bipartite_match(a, b, r, protect_first=False):
        return originals["bipartite_match"](_up(a), _up(b), r, protect_first)

    def cluster_assignment(x, num_clusters, k=merge.KNN):
        return originals["cluster_assignment"](_up(x), num_clusters, k)  # [B, M, L] fp32 0/1

    def combine(x, assignment, weights=None, normalize=True):
        return originals["combine"](_up(x), _up(assignment), _up(weights), normalize).to(x.dtype)  # [B, M, C]

    def weighted_merge(a, b, wa, wb, matching):
        merged, total = originals["weighted_merge"](_up(a), _up(b), _up(wa), _up(wb), matching)
        return merged.to(a.dtype), total.to(wb.dtype)  # [B, Kb, C], [B, Kb]

    wrappers = {"class_attention": class_attention, "decouple": decouple, "bipartite_match": bipartite_match,
                "cluster_assignment": cluster_assignment, "combine": combine, "weighted_merge": weighted_merge}
    try:
        for name, fn in wrappers.items():
            setattr(merge, name, fn)
        yield
    finally:
        for name, fn in originals.items():
            setattr(merge, name, fn)


class Fp32LayerNorm(torch.nn.LayerNorm):
    """A LayerNorm of an fp16 model that normalises in fp32: ``Cast -> (x - mean) / sqrt(var + eps) -> Cast``, then
    the affine ``* weight + bias`` in fp16 (the normalised values are O(1)).

    The affine stays outside the fp32 part on purpose: ONNX Runtime (1.31) fuses ``Cast -> decomposed LayerNorm ->
    Mul -> Add`` into one LayerNormalization with an fp16 input and fp32 scale, which it then refuses to load.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float(), self.normalized_shape, None, None, self.eps).to(x.dtype)  # [..., C]
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y


def half_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` in fp16, its LayerNorms normalising in fp32 (:class:`Fp32LayerNorm`), attention in
    the fused form.

    The fused form (``attn.fused_attn``) computes the class-attention importance from q and k
    (:func:`tdm_edge.reduce.merge.class_attention`), which :func:`fp32_selection` casts up; the explicit form
    would read it off the fp16 softmax. Both export as the same MatMul/Softmax/MatMul attention.
    """
    half = copy.deepcopy(model).half().eval()
    for module in half.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.__class__ = Fp32LayerNorm
        if hasattr(module, "fused_attn"):
            module.fused_attn = True
    return half


class HalfEdges(torch.nn.Module):
    """An fp16 model with fp32 edges: ``x [B, C, H, W]`` fp32 -> Cast -> model -> Cast -> fp32 logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()  # [B, num_classes]
