"""GMAC counter that counts the way the BAT paper counts (torchprofile 0.0.4, METHOD.md).

Counted: matrix products (linear, matmul, bmm, convolution, the two products inside fused attention) as
multiply-accumulates, and one MAC per output element of ``mul``, affine layer norms and ``mean``. Not counted:
softmax, GELU, add, division, sorting and gathering. The counter watches the aten operators a real forward pass
dispatches (a ``TorchDispatchMode``), so it counts exactly what our merge ops execute too: the matching
similarities, DPC-kNN's distance products (written as MatMul, where the paper's ``cdist`` went uncounted; a
difference of about 0.003 GMACs for DeiT-S) and the combination matrices.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from math import prod

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .patch import patch_vit, schedule_of

aten = torch.ops.aten


def _shape(t) -> list[int]:
    return list(t.shape)


def _mm(args, out) -> int:  # [n, m] @ [m, p]
    a, b = _shape(args[0]), _shape(args[1])
    return a[0] * a[1] * b[1]


def _addmm(args, out) -> int:  # bias + [n, m] @ [m, p]
    return _mm(args[1:], out)


def _bmm(args, out) -> int:  # [b, n, m] @ [b, m, p]
    a, b = _shape(args[0]), _shape(args[1])
    return a[0] * a[1] * a[2] * b[2]


def _baddbmm(args, out) -> int:
    return _bmm(args[1:], out)


def _linear(args, out) -> int:  # [..., m] x [p, m]^T
    return out.numel() * args[1].shape[1]


def _matmul(args, out) -> int:  # [..., n, m] @ [..., m, p] (1-D operands as in torch.matmul)
    return out.numel() * args[0].shape[-1]


def _conv(args, out) -> int:
    weight = _shape(args[1])  # [C_out, C_in / groups, *kernel]
    return out.numel() * prod(weight[1:])


def _sdpa(args, out) -> int:  # q [B, H, Nq, d], k [B, H, Nk, d], v [B, H, Nk, dv]: QK^T and AV
    q, k, v = _shape(args[0]), _shape(args[1]), _shape(args[2])
    return prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def _elementwise(args, out) -> int:
    return out.numel()


def _layer_norm(args, out) -> int:  # (native_)layer_norm(input, shape, weight, bias, eps)
    affine = len(args) > 2 and args[2] is not None
    return (out[0] if isinstance(out, tuple) else out).numel() if affine else 0


# Composite operators (seen whole under inference mode) and the products they decompose into otherwise; the mode
# is off while an operator runs, so a composite is never counted twice.
HANDLERS = {
    aten.linear.default: _linear,
    aten.matmul.default: _matmul,
    aten.conv2d.default: _conv,
    aten.layer_norm.default: _layer_norm,
    aten.mm.default: _mm,
    aten.addmm.default: _addmm,
    aten.bmm.default: _bmm,
    aten.baddbmm.default: _baddbmm,
    aten.convolution.default: _conv,
    aten.mul.Tensor: _elementwise,
    aten.mul.Scalar: _elementwise,
    aten.mean.dim: _elementwise,
    aten.mean.default: _elementwise,
    aten.native_layer_norm.default: _layer_norm,
}


class MacCounter(TorchDispatchMode):
    """Counts multiply-accumulates of everything run inside ``with MacCounter() as c:``; read ``c.total``."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        handler = HANDLERS.get(func)
        if handler is None and "scaled_dot_product" in func.name() and not func.name().endswith("backward"):
            handler = _sdpa
        if handler is not None:
            macs = handler(args, out)
            self.total += macs
            name = func.name().split("::")[-1]
            self.by_op[name] = self.by_op.get(name, 0) + macs
        return out


def count_macs(model: torch.nn.Module, image: torch.Tensor) -> int:
    """MACs of one forward pass of ``model`` on ``image [B, 3, H, W]``."""
    with torch.inference_mode(), MacCounter() as counter:
        model(image)
    return counter.total


@dataclass
class FlopsReport:
    model: str
    method: str
    keep_rate: float
    img_size: int
    tokens: list[int]  # tokens entering each block
    stage_tokens: list[int]  # e.g. [197, 139, 98, 69]
    gmacs: float
    baseline_gmacs: float
    baseline_tokens: list[int] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.gmacs / self.baseline_gmacs

    def as_dict(self) -> dict:
        return {"model": self.model, "method": self.method, "keep_rate": self.keep_rate, "img_size": self.img_size,
                "tokens": self.tokens, "stage_tokens": self.stage_tokens, "gmacs": round(self.gmacs, 4),
                "baseline_gmacs": round(self.baseline_gmacs, 4), "ratio": round(self.ratio, 4)}

    def table(self) -> str:
        lines = [f"{self.model} @ {self.img_size}px, {self.method}, keep rate {self.keep_rate}",
                 f"{'block':>5}  {'tokens':>6}  {'unpruned':>8}"]
        lines += [f"{i:>5}  {n:>6}  {b:>8}" for i, (n, b) in enumerate(zip(self.tokens, self.baseline_tokens))]
        lines.append(f"stages: {' -> '.join(map(str, self.stage_tokens))}")
        lines.append(f"GMACs: {self.gmacs:.3f} (unpruned {self.baseline_gmacs:.3f}, ratio {self.ratio:.3f})")
        return "\n".join(lines)


def flops_report(model: torch.nn.Module, batch: int = 1, name: str | None = None) -> FlopsReport:
    """GMACs per image of a patched model and of the same model unpruned, with the token counts."""
    baseline = patch_vit(copy.deepcopy(model), method="none").eval()
    if schedule_of(model) is None:
        model = baseline  # an unpatched model is its own baseline: count it once
    schedule = schedule_of(model)
    img_size = model.patch_embed.img_size
    image = torch.zeros(batch, model.patch_embed.proj.in_channels, *img_size)
    base_macs = count_macs(baseline, image) / batch
    macs = base_macs if model is baseline else count_macs(model.eval(), image) / batch
    return FlopsReport(
        model=name or getattr(model, "default_cfg", {}).get("architecture", type(model).__name__),
        method=schedule.method, keep_rate=schedule.keep_rate, img_size=img_size[0],
        tokens=schedule.block_tokens, stage_tokens=schedule.stage_tokens, gmacs=macs / 1e9,
        baseline_gmacs=base_macs / 1e9, baseline_tokens=schedule_of(baseline).block_tokens)
