"""Checks that an exported ONNX graph computes what the PyTorch model computes, token selections included.

Every input (random, and structured images: see :func:`structured_images`) runs through the
PyTorch model and through ONNX Runtime; fp32 logits must agree within ``atol`` and give the same top-1.
The token selections are compared exactly: while exporting, :func:`record_selections` makes every selection the
model computes (decoupling and matching indices, clustering assignment matrices) an extra graph output; the
shipped graph drops those outputs, and verification runs the shipped graph with them declared again
(:func:`with_outputs`), so what is compared is the shipped computation, not a re-export.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..reduce import merge
from ..runners.selections import with_outputs


class VerificationError(RuntimeError):
    """The exported graph does not match the PyTorch model; the message is one line."""


class Recording(list):
    """``[(name, selection)]`` in call order, plus ``importance``: ``{attentive name: [B, N-1] scores}``."""

    def __init__(self) -> None:
        super().__init__()
        self.importance: dict[str, torch.Tensor] = {}


@contextlib.contextmanager
def record_selections(forced: dict[str, np.ndarray] | None = None) -> Iterator["Recording"]:
    """Record every selection the patched blocks compute, in call order, as ``(name, tensor)`` pairs.

    Names: ``tdm_attentive_{i}`` / ``tdm_inattentive_{i}`` (``[B, K]`` / ``[B, L]`` indices from decoupling),
    ``tdm_matched_{i}`` / ``tdm_partners_{i}`` / ``tdm_unmatched_{i}`` (the :class:`~tdm_edge.reduce.merge.Matching` of a
    bipartite matching, BAT's or ToMe's), ``tdm_clusters_{i}`` (``[B, M, L]`` DPC-kNN assignment), ``i`` counting
    each kind from 0. Wraps the functions of :mod:`tdm_edge.reduce.merge` that
    :func:`tdm_edge.reduce.patch.reduce_tokens` calls, for the duration of the ``with`` block only.
    With ``forced``, a selection whose name is in it is replaced by that array (e.g. ONNX Runtime's).
    The importance each decoupling sorted is kept in ``.importance`` (``tdm_attentive_{i}`` -> ``[B, N-1]``).
    """
    records = Recording()
    counts: dict[str, int] = {}
    originals = {name: getattr(merge, name) for name in ("decouple", "bipartite_match", "cluster_assignment")}

    def add(kind: str, value: torch.Tensor) -> torch.Tensor:
        name = f"tdm_{kind}_{counts.get(kind, 0)}"
        counts[kind] = counts.get(kind, 0) + 1
        if forced is not None and name in forced:
            value = torch.from_numpy(forced[name]).to(value.dtype)
        records.append((name, value))
        return value

    def decouple(importance, *args, **kwargs):
        att, inatt = originals["decouple"](importance, *args, **kwargs)
        records.importance[f"tdm_attentive_{counts.get('attentive', 0)}"] = importance
        return add("attentive", att), add("inattentive", inatt)

    def bipartite_match(*args, **kwargs):
        src, dst, unm = originals["bipartite_match"](*args, **kwargs)
        return merge.Matching(add("matched", src), add("partners", dst), add("unmatched", unm))

    def cluster_assignment(*args, **kwargs):
        return add("clusters", originals["cluster_assignment"](*args, **kwargs))

    wrappers = {"decouple": decouple, "bipartite_match": bipartite_match, "cluster_assignment": cluster_assignment}
    try:
        for name, fn in wrappers.items():
            setattr(merge, name, fn)
        yield records
    finally:
        for name, fn in originals.items():
            setattr(merge, name, fn)


class SelectionProbe(torch.nn.Module):
    """``model`` returning ``(logits, *selections)``: what the exporter traces so selections get graph names."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with record_selections() as records:
            logits = self.model(x)
        return (logits, *(value for _, value in records))


def run_with_selections(model: torch.nn.Module, x: torch.Tensor, forced: dict[str, np.ndarray] | None = None
                        ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Eager ``model(x)`` -> ``(logits, {selection name: array}, {attentive name: importance})``;
    ``forced`` as in :func:`record_selections`."""
    with torch.inference_mode(), record_selections(forced) as records:
        logits = model(x)
    return (logits.numpy(), {name: value.numpy() for name, value in records},
            {name: value.numpy() for name, value in records.importance.items()})


def sorted_within(order: np.ndarray, scores: np.ndarray, tol: float) -> bool:
    """Whether ``scores[b, order[b]]`` is a permutation of ``scores[b]`` sorted descending up to ``tol``."""
    ranked = np.take_along_axis(scores, order, axis=-1)  # [B, N]
    is_perm = np.array_equal(np.sort(order, axis=-1), np.broadcast_to(np.arange(order.shape[-1]), order.shape))
    return is_perm and bool((ranked[:, 1:] <= ranked[:, :-1] + tol).all())


def structured_images(count: int, size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                      channels: int = 3) -> np.ndarray:
    """``[count, C, H, W]`` normalised float32 images with structure: colour ramps, smooth blobs, a plaid of
    incommensurate sines, a disc on a ramp, off-centre rings (cycled when ``count`` exceeds five).

    No two patches of these images are identical. Images that repeat a patch exactly (flat frames, checkerboards
    aligned with the patch grid) make tokens that differ only by their position embedding; their similarities
    then tie to the last bit of fp32 and two correct backends break those ties differently, so such images
    cannot be held to identical selections.
    """
    h, w = size
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")  # [H, W]

    def blob(cy: float, cx: float, s: float) -> np.ndarray:
        return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))

    disc = (((yy - 0.37) ** 2 + (xx - 0.61) ** 2) < 0.2 ** 2).astype(float)
    rings = 0.5 + 0.5 * np.cos(2 * np.pi * 5.3 * np.hypot(yy - 0.31, xx - 0.72))
    patterns = [
        np.stack([xx, yy, 1.0 - 0.7 * xx]),  # colour ramps
        np.stack([blob(0.3, 0.3, 0.15), blob(0.6, 0.7, 0.2), blob(0.8, 0.2, 0.1) + 0.3 * xx]),  # smooth blobs
        np.stack([0.5 + 0.5 * np.sin(2 * np.pi * 3.3 * xx + c) * np.cos(2 * np.pi * 4.7 * yy + 0.4 * c)
                  for c in range(3)]),  # plaid
        np.stack([0.8 * disc + 0.2 * xx, 0.5 * disc + 0.3 * yy, 0.9 * (1 - disc) * xx]),  # disc on a ramp
        np.stack([rings, 0.6 * rings + 0.4 * yy, 1.0 - rings * xx]),  # off-centre rings
    ]
    images = np.stack([patterns[i % len(patterns)][:channels] for i in range(count)])  # [count, C, H, W] in [0, 1]
    mean_ = np.asarray(mean[:channels]).reshape(1, -1, 1, 1)
    std_ = np.asarray(std[:channels]).reshape(1, -1, 1, 1)
    return ((images - mean_) / std_).astype(np.float32)


@dataclass
class InputCheck:
    """One verified input batch.

    When selections differ, PyTorch runs again with ONNX Runtime's selections: ``forced_diff`` / ``forced_top1``
    compare that run's logits with ONNX Runtime's (equal = the graph computes the same given the selections), and
    ``orders_valid`` says whether ONNX Runtime's decoupling orders are sorted by that run's importance up to a
    near-tie tolerance (a wrong TopK would fail it)."""

    name: str
    batch: int
    max_abs_diff: float
    top1_equal: bool
    mismatched: list[str] = field(default_factory=list)
    forced_diff: float | None = None
    forced_top1: bool | None = None
    orders_valid: bool | None = None

    @property
    def selections_equal(self) -> bool:
        return not self.mismatched

    def passed(self, atol: float, strict_selections: bool) -> bool:
        if self.selections_equal:
            return self.top1_equal and self.max_abs_diff <= atol
        return (not strict_selections and self.forced_diff <= atol and bool(self.forced_top1)
                and bool(self.orders_valid))


@dataclass
class VerifyReport:
    atol: float
    checks: list[InputCheck]
    selections_compared: int  # selection tensors compared per input
    selections_missing: list[str]
    strict_selections: bool = False

    @property
    def max_abs_diff(self) -> float:
        """Over the inputs whose selections were identical (the others are compared given the same selections)."""
        same = [c.max_abs_diff for c in self.checks if c.selections_equal]
        return max(same + [c.forced_diff for c in self.checks if not c.selections_equal])

    @property
    def ok(self) -> bool:
        return not self.selections_missing and all(c.passed(self.atol, self.strict_selections) for c in self.checks)

    def summary(self) -> str:
        images = sum(c.batch for c in self.checks)
        same = sum(c.selections_equal for c in self.checks)
        tied = [c for c in self.checks if not c.selections_equal]
        bad = [c.name for c in self.checks if not c.passed(self.atol, self.strict_selections)]
        text = (f"{'passed' if self.ok else 'FAILED'}: {len(self.checks)} inputs ({images} images), "
                f"max |ONNX Runtime - PyTorch| = {self.max_abs_diff:.2e} (limit {self.atol:.0e}), "
                f"top-1 {'identical' if all(c.top1_equal for c in self.checks) else 'DIFFERS'}, "
                f"{self.selections_compared} token selections identical on {same}/{len(self.checks)} inputs")
        if tied:
            text += (f" (near-ties broken differently on {', '.join(c.name for c in tied)}, first "
                     f"{tied[0].mismatched[0]}: logits differ by up to {max(c.max_abs_diff for c in tied):.2e} there, "
                     f"{max(c.forced_diff for c in tied):.2e} given the same selections)")
        if bad:
            text += f"; failing inputs: {', '.join(bad)}"
        if self.selections_missing:
            text += f"; selections not found in the graph: {', '.join(self.selections_missing)}"
        return text


def verify(model: torch.nn.Module, proto, selection_names: Sequence[str], batches: Sequence[int],
           preprocessing: dict, atol: float = 1e-4, num_random: int = 2, seed: int = 0,
           intra_op_threads: int | None = None, strict_selections: bool = False, order_rtol: float = 1e-6
           ) -> VerifyReport:
    """Compare ``model`` (PyTorch, eval) with the ONNX graph ``proto`` (input ``input``, output ``logits``).

    For each batch size: ``num_random`` standard-normal inputs, then structured images (five, packed into
    batches of that size). Every input must give max |diff| <= ``atol`` and the same top-1. Selections named in
    ``selection_names`` are compared exactly; where they differ, PyTorch runs again with ONNX Runtime's
    selections: if the logits then agree within ``atol`` with the same top-1, and ONNX Runtime's decoupling
    orders are sorted by importance up to ``order_rtol`` (relative to the largest importance: ``1e-6`` for an fp32
    graph, fp16's rounding for an fp16 one), the backends differ only in how rounding broke near-ties (a pruned
    model is discontinuous there), which passes unless ``strict_selections``.
    """
    from ..runners.onnxrt import OnnxRuntimeRunner

    probe, missing = with_outputs(proto, selection_names)
    channels, height, width = preprocessing["input_size"]
    gen = torch.Generator().manual_seed(seed)
    feeds: list[tuple[str, np.ndarray]] = []
    for b in batches:
        for i in range(num_random):
            feeds.append((f"random{i}@{b}", torch.randn(b, channels, height, width, generator=gen).numpy()))
        images = structured_images(-(-5 // b) * b, (height, width), preprocessing["mean"], preprocessing["std"],
                                   channels)
        for start in range(0, len(images) - b + 1, b):
            feeds.append((f"structured{start // b}@{b}", images[start:start + b]))
    checks = []
    compared = [n for n in selection_names if n not in missing]
    with OnnxRuntimeRunner(probe, intra_op_threads=intra_op_threads) as runner:
        for name, x in feeds:
            ref_logits, ref_sel, _ = run_with_selections(model, torch.from_numpy(x))
            out = runner.infer({"input": x})
            diff = float(np.abs(out["logits"] - ref_logits).max())
            top1 = bool(np.array_equal(out["logits"].argmax(-1), ref_logits.argmax(-1)))
            wrong = [n for n in compared if not np.array_equal(out[n], ref_sel[n])]
            check = InputCheck(name, x.shape[0], diff, top1, wrong)
            if wrong:
                forced = {n: out[n] for n in compared}
                logits, _, importance = run_with_selections(model, torch.from_numpy(x), forced)
                check.forced_diff = float(np.abs(out["logits"] - logits).max())
                check.forced_top1 = bool(np.array_equal(out["logits"].argmax(-1), logits.argmax(-1)))
                check.orders_valid = all(
                    sorted_within(np.concatenate([out[n], out[n.replace("attentive", "inattentive")]], -1), w,
                                  order_rtol * float(np.abs(w).max()))
                    for n, w in importance.items() if n in out)
            checks.append(check)
    return VerifyReport(atol, checks, len(compared), missing, strict_selections)
