"""Turn any timm VisionTransformer into a token-reduced one, in place.

As in ToMe's ``patch/timm.py``, the existing ``Block`` objects get a subclass swapped in (``__class__``), so the
parameters, the state_dict and any checkpoint stay exactly as they were. Each block carries its fixed
:class:`~tdm_edge.reduce.schedule.Stage` (or ``None``) as a plain attribute; the block still maps ``[B, N, C]`` to
``[B, N', C]`` with ``N'`` known when the model was patched.

Inside a reducing block (EViT's and BAT's placement, METHOD.md)::

    x = x + attn(norm1(x))      # also yields the class attention and ToMe's key metric
    x = reduce(x, ...)          # [B, N, C] -> [B, N', C]
    x = x + mlp(norm2(x))

ToMe (``tome/patch/timm.py`` of facebookresearch/ToMe, ``prop_attn=True``) also carries every token's size (how many
input tokens it stands for) from block to block and adds ``log(size)`` to the attention logits. The reference keeps
the sizes in a dict shared by the model and all its blocks; here ``model.blocks`` becomes a
:class:`SizeTrackingBlocks` (its class swapped, like the blocks', so the state_dict is unchanged) that creates one
:class:`TokenSizes` per forward pass and hands it to every block as a keyword argument. A block still takes and
returns ``[B, N, C]`` tokens (forward hooks see them as before); the sizes live only as long as the pass, so the
model keeps no tensor between calls and two passes cannot see each other's sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention, Block, VisionTransformer

from . import merge
from ..errors import UsageError
from ..limits import CLUSTER_RATIO, KNN
from .schedule import Schedule, ScheduleError, Stage, build_schedule


class PatchError(UsageError):
    """The model cannot be patched; the message is one line meant for the user."""


class AttentionOutput(NamedTuple):
    x: torch.Tensor  # [B, N, C] attention output (after proj)
    importance: torch.Tensor | None  # [B, N-1] class attention of every patch token
    metric: torch.Tensor | None  # [B, N, d] keys averaged over heads (ToMe's similarity metric)


def attention_with_importance(attn: Attention, x: torch.Tensor, importance: bool = True,
                              metric: bool = False, bias: torch.Tensor | None = None) -> AttentionOutput:
    """timm ``Attention.forward`` that also returns the class token's attention row and/or the mean key.

    Follows timm's own forward (gate, q/k norm, scale norm, fused or explicit attention). With fused attention
    the class row is recomputed from q and k (``N * C`` extra MACs); otherwise it is read from the matrix.
    The exported graph keeps this form too: its MatMul/Softmax/MatMul stays the plain attention pattern that
    TensorRT can fuse, because nothing else reads the Softmax output (reading the row from the matrix instead was
    measured on ONNX Runtime CPU and gave no difference we could tell from noise).
    What is not asked for is not computed and comes back as ``None``. ``bias`` (``[B, 1, 1, N]``, ToMe's
    ``log(size)``) is added to the attention logits before the softmax: fused attention takes it as its additive
    ``attn_mask``; in the exported graph it is one Add before the Softmax.
    """
    B, N, _ = x.shape
    gate = attn.gate(x).sigmoid() if attn.gate is not None else None
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # [B, H, N, d] each
    q, k = attn.q_norm(q), attn.k_norm(k)
    cls_attn = None
    if attn.fused_attn:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=attn.attn_drop.p if attn.training else 0.0)
        if importance:
            cls_attn = merge.class_attention(q, k, attn.scale, bias)  # [B, N-1]
    else:
        a = (q * attn.scale) @ k.transpose(-2, -1)  # [B, H, N, N]
        if bias is not None:
            a = a + bias
        a = a.softmax(dim=-1)
        if importance:
            cls_attn = a[:, :, 0, 1:].mean(dim=1)  # [B, N-1]
        y = attn.attn_drop(a) @ v
    y = attn.norm(y.transpose(1, 2).reshape(B, N, attn.attn_dim))
    if gate is not None:
        y = y * gate
    y = attn.proj_drop(attn.proj(y))
    return AttentionOutput(y, cls_attn, k.mean(dim=1) if metric else None)


def reduce_tokens(x: torch.Tensor, out: AttentionOutput, stage: Stage) -> torch.Tensor:
    """Apply one stage: ``[B, N, C] -> [B, stage.n_out, C]``, class token first.

    ToMe's stages also need and produce token sizes: :meth:`ReductionBlock.forward` calls
    :func:`~tdm_edge.reduce.merge.tome_merge` for them.
    """
    if stage.method == "slice":  # not a pruning method: the zero-cost floor that latency benchmarks compare with
        return x[:, :stage.n_out]
    if stage.method == "tome":
        raise ValueError("ToMe stages carry token sizes: use merge.tome_merge(x, metric, size, r)")
    cls = x[:, :1]  # [B, 1, C]
    w = out.importance
    if stage.method == "random":
        w = torch.rand(x.shape[0], x.shape[1] - 1, device=x.device)  # [B, N-1]
    att, inatt = merge.decouple(w, stage.keep)  # [B, K], [B, L]
    if stage.method in ("random", "evit"):
        # rows gathered straight from x (offset 1 skips the class token): no copy of the patches is made first
        x_att, w_att = merge.gather_tokens(x, att, offset=1), w.gather(1, att)  # [B, K, C], [B, K]
        if stage.method == "random":
            return torch.cat([cls, x_att], dim=1)
        # EViT: the top K-1 tokens stay, all others fuse into one token, weighted by (unnormalised) attention
        x_in, w_in = merge.gather_tokens(x, inatt, offset=1), w.gather(1, inatt)  # [B, L, C], [B, L]
        rest = torch.cat([x_att[:, -1:], x_in], dim=1)  # [B, L+1, C]
        w_rest = torch.cat([w_att[:, -1:], w_in], dim=1)  # [B, L+1]
        fused = merge.combine(rest, torch.ones_like(w_rest).unsqueeze(1), w_rest, normalize=False)  # [B, 1, C]
        return torch.cat([cls, x_att[:, :-1], fused], dim=1)
    # BAT: match homogeneous attentive tokens (A = even, B = odd ranks), cluster the inattentive ones. Every set is
    # gathered straight from x, so no [K, C] copy is sliced or normalised on the way.
    a, b = att[:, 0::2], att[:, 1::2]  # [B, Ka], [B, Kb]
    x_a, x_b, x_in = (merge.gather_tokens(x, i, offset=1) for i in (a, b, inatt))  # [B, Ka|Kb|L, C]
    w_a, w_b, w_in = (w.gather(1, i) for i in (a, b, inatt))  # [B, Ka|Kb|L]
    matching = merge.bipartite_match(x_a, x_b, stage.pairs)
    merged = merge.merge_matched(x_a, x_b, w_a, w_b, matching)  # [B, Kb, C]
    unmatched = merge.gather_tokens(x_a, matching.unm)  # [B, Ka - r, C]
    clusters = merge.combine(x_in, merge.cluster_assignment(x_in, stage.clusters, stage.knn), w_in)  # [B, M, C]
    return torch.cat([cls, merged, unmatched, clusters], dim=1)


IMPORTANCE_METHODS = ("bat", "evit")


@dataclass
class TokenSizes:
    """ToMe's token sizes during one forward pass: ``value [B, N]`` for the tokens entering the next block, each the
    number of input tokens (class token or patches) it stands for; ``None`` while nothing has merged (all ones)."""

    value: torch.Tensor | None = None


class ReductionBlock(Block):
    """A timm ``Block`` whose class was swapped in by :func:`patch_vit`; ``tdm_stage`` is fixed per block.

    ``tdm_token_sizes`` (ToMe) makes every block of the model, merging or not, read the sizes from the
    :class:`TokenSizes` it is given (proportional attention) and a merging block replace them.
    """

    tdm_stage: Stage | None = None
    tdm_token_sizes: bool = False

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                token_sizes: TokenSizes | None = None) -> torch.Tensor:
        stage = self.tdm_stage
        if stage is None and not self.tdm_token_sizes:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        if attn_mask is not None or is_causal:
            raise ValueError("token reduction does not support attention masks")
        if not self.tdm_token_sizes:
            out = attention_with_importance(self.attn, self.norm1(x), importance=stage.method in IMPORTANCE_METHODS)
            x = x + self.drop_path1(self.ls1(out.x))  # [B, N, C]
            x = reduce_tokens(x, out, stage)  # [B, N', C]
            return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        if token_sizes is None:
            raise ValueError("ToMe blocks need the token sizes of the forward pass: run them through model.blocks "
                             "(timm's gradient checkpointing and forward_intermediates call blocks one by one)")
        size = token_sizes.value  # [B, N] or None (all ones)
        bias = None if size is None else size.log()[:, None, None, :]  # [B, 1, 1, N]: proportional attention
        out = attention_with_importance(self.attn, self.norm1(x), importance=False, metric=stage is not None,
                                        bias=bias)
        x = x + self.drop_path1(self.ls1(out.x))  # [B, N, C]
        if stage is not None:
            x, token_sizes.value = merge.tome_merge(x, out.metric, size, stage.pairs)  # [B, N', C], [B, N']
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class SizeTrackingBlocks(torch.nn.Sequential):
    """``model.blocks`` of a ToMe model: runs the blocks in order with one fresh :class:`TokenSizes` per pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = TokenSizes()
        for blk in self:
            x = blk(x, token_sizes=sizes)  # [B, N_i, C]
        return x


def count_tokens(model: VisionTransformer) -> int:
    """Tokens entering the first block: patches plus prefix tokens."""
    return model.patch_embed.num_patches + model.num_prefix_tokens


def _check_model(model: torch.nn.Module) -> None:
    if not isinstance(model, VisionTransformer):
        raise PatchError(f"{type(model).__name__} is not a timm VisionTransformer")
    if model.cls_token is None or model.num_prefix_tokens != 1:
        raise PatchError("token reduction needs exactly one class token and no register/distillation tokens "
                         f"(this model has {model.num_prefix_tokens} prefix tokens, "
                         f"class token: {model.cls_token is not None})")
    if getattr(model.patch_embed, "dynamic_img_size", False) or getattr(model, "dynamic_img_size", False):
        raise PatchError("fixed token counts need a fixed image size; create the model without dynamic_img_size")
    if type(model.blocks) not in (torch.nn.Sequential, SizeTrackingBlocks):
        raise PatchError(f"model.blocks is {type(model.blocks).__name__}; timm's nn.Sequential of blocks expected")
    for i, blk in enumerate(model.blocks):
        if not isinstance(blk, Block) or type(blk.attn) is not Attention:
            raise PatchError(f"block {i} is {type(blk).__name__} with {type(getattr(blk, 'attn', None)).__name__}; "
                             "only timm's standard Block/Attention are supported")


def patch_vit(model: VisionTransformer, method: str = "bat", keep_rate: float = 0.7,
              prune_blocks: tuple[int, ...] | None = None, cluster_ratio: float = CLUSTER_RATIO, knn: int = KNN,
              tome_r: int | None = None) -> VisionTransformer:
    """Make ``model`` token-reduced in place and return it. Calling it again replaces the previous setting.

    Args:
        model: a timm ``VisionTransformer`` (DeiT/ViT of any size and fixed image size).
        method: ``bat``, ``evit`` (top-K plus one fused token), ``tome`` (r merges in every block, token sizes
            and proportional attention as facebookresearch/ToMe),
            ``random`` (a control: K random tokens kept) or ``none``.
        keep_rate: rho in (0, 1]; a stage with N tokens keeps ``ceil(rho * (N-1))`` patch tokens.
        prune_blocks: 0-based blocks that reduce (BAT/EViT/random); default the 4th, 7th and 10th of 12.
        cluster_ratio: clusters per inattentive token for BAT (our choice 0.25: best or level with 0.1 / 0.5
            after fine-tuning in benchmarks/results/equal_cost.md; see METHOD.md).
        knn: k of DPC-kNN's density.
        tome_r: ToMe tokens merged per block; default matches BAT's cost at ``keep_rate``.
    Returns:
        ``model``, with ``model.tdm_schedule`` (a :class:`~tdm_edge.reduce.schedule.Schedule`) set.
    Raises:
        PatchError / ScheduleError with a one-line message.
    """
    _check_model(model)
    schedule = build_schedule(count_tokens(model), len(model.blocks), method, keep_rate, prune_blocks,
                              cluster_ratio, knn, tome_r)
    tome = schedule.method == "tome"
    model.blocks.__class__ = SizeTrackingBlocks if tome else torch.nn.Sequential
    for i, blk in enumerate(model.blocks):
        blk.__class__ = ReductionBlock
        blk.tdm_stage = schedule.stage_at(i)
        blk.tdm_token_sizes = tome
    model.tdm_schedule = schedule
    return model


def schedule_of(model: torch.nn.Module) -> Schedule | None:
    """The schedule a patched model carries, or ``None`` for an unpatched model."""
    return getattr(model, "tdm_schedule", None)


__all__ = ["AttentionOutput", "PatchError", "ReductionBlock", "ScheduleError", "SizeTrackingBlocks", "TokenSizes",
           "attention_with_importance", "count_tokens", "patch_vit", "reduce_tokens", "schedule_of"]
