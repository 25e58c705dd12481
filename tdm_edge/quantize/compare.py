"""FP32 against INT8 on real images: top-1/top-5 agreement, logit cosine, and the token decisions that changed.

Pruning makes precision errors discrete: a slightly different class attention keeps a different token, and every
later stage works on different tokens. Both graphs are run by ONNX Runtime with their selection tensors
(``tdm_attentive_i``, ``tdm_matched_i``, ..., named by the export, see :mod:`tdm_edge.export.selections`) declared
as extra outputs, so what is compared is what each graph decided, not a PyTorch re-run. Per stage ``i``:

- **kept**: which patch tokens are attentive; changed = tokens whose kept/pruned status differs (of all N-1);
- **matched**: which token each merged-away attentive token joined; changed = of the tokens merged in either
  model, those whose partner differs (or that are merged in only one);
- **clustered**: which inattentive tokens share a cluster (compared as groups, cluster ids are arbitrary);
  changed = of the tokens clustered in either model, those whose group differs.

Token indices are positions in the stage's input, so from the second stage on they are only comparable while the
earlier stages agreed: the per-image "identical" rates are the figure to read there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .data import ImageSet

KINDS = ("kept", "matched", "clustered")


@dataclass
class StageDecisions:
    stage: int
    images: int = 0
    identical: dict = field(default_factory=lambda: {k: 0 for k in KINDS})  # images with identical decisions
    changed: dict = field(default_factory=lambda: {k: 0 for k in KINDS})  # tokens whose decision changed
    tokens: dict = field(default_factory=lambda: {k: 0 for k in KINDS})  # tokens with that decision (either)
    present: set = field(default_factory=set)  # kinds this stage has (EViT: kept only; ToMe: matched only)

    def as_dict(self) -> dict:
        return {"stage": self.stage, "images": self.images,
                **{k: {"identical_images": self.identical[k] / self.images,
                       "changed_tokens": self.changed[k] / self.tokens[k] if self.tokens[k] else 0.0,
                       "tokens": self.tokens[k]} for k in KINDS if k in self.present}}


@dataclass
class CompareReport:
    images: int
    top1: float
    top5: float
    cosine_mean: float
    cosine_min: float
    stages: list[StageDecisions]

    def as_dict(self) -> dict:
        return {"images": self.images, "top1_agreement": self.top1, "top5_agreement": self.top5,
                "logit_cosine_mean": self.cosine_mean, "logit_cosine_min": self.cosine_min,
                "stages": [s.as_dict() for s in self.stages]}

    def table(self) -> str:
        lines = [f"{self.images} images: top-1 agreement {100 * self.top1:.1f} %, top-5 set identical "
                 f"{100 * self.top5:.1f} %, logit cosine mean {self.cosine_mean:.4f} (min {self.cosine_min:.4f})"]
        for s in self.stages:
            d = s.as_dict()
            parts = [f"{k} identical on {100 * d[k]['identical_images']:.1f} % of images "
                     f"({100 * d[k]['changed_tokens']:.2f} % of {d[k]['tokens']} token decisions changed)"
                     for k in KINDS if k in d]
            lines.append(f"stage {s.stage + 1}: " + "; ".join(parts))
        return "\n".join(lines)


def _kept(att: np.ndarray, inatt: np.ndarray) -> np.ndarray:
    """``[N-1]`` bool: kept (attentive) status of every stage input patch token."""
    status = np.zeros(att.size + inatt.size, bool)
    status[att] = True
    return status


def _partners(sel: dict, i: int, b: int) -> dict[int, int]:
    """``{merged-away token: the token it joined}`` in stage-input positions."""
    src, dst = sel[f"tdm_matched_{i}"][b], sel[f"tdm_partners_{i}"][b]
    if f"tdm_attentive_{i}" in sel:  # BAT: sets A and B alternate through the attentive tokens by rank
        att = sel[f"tdm_attentive_{i}"][b]
        a, bb = att[0::2], att[1::2]
    else:  # ToMe: A and B alternate through the tokens by position
        a = bb = None
    return {int(a[s] if a is not None else 2 * s): int(bb[d] if bb is not None else 2 * d + 1)
            for s, d in zip(src.reshape(-1), dst.reshape(-1))}


def _groups(sel: dict, i: int, b: int) -> dict[int, tuple[int, ...]]:
    """``{inattentive token: the sorted tokens of its cluster}``: cluster membership without arbitrary ids."""
    assign = sel[f"tdm_clusters_{i}"][b]  # [M, L]
    inatt = sel[f"tdm_inattentive_{i}"][b]  # [L]
    label = assign.argmax(0)  # [L]
    members = {m: tuple(sorted(int(t) for t in inatt[label == m])) for m in np.unique(label)}
    return {int(t): members[m] for t, m in zip(inatt, label)}


def _diff_maps(x: dict, y: dict) -> tuple[int, int]:
    keys = set(x) | set(y)
    return sum(x.get(k) != y.get(k) for k in keys), len(keys)


def compare_decisions(ref: dict, test: dict, stages: list[StageDecisions]) -> None:
    """Add one batch of selections (``{name: [B, ...]}`` of both graphs) to ``stages``."""
    batch = next(iter(ref.values())).shape[0]
    for s in stages:
        i = s.stage
        for b in range(batch):
            s.images += 1
            if f"tdm_attentive_{i}" in ref:
                s.present.add("kept")
                x = _kept(ref[f"tdm_attentive_{i}"][b], ref[f"tdm_inattentive_{i}"][b])
                y = _kept(test[f"tdm_attentive_{i}"][b], test[f"tdm_inattentive_{i}"][b])
                n = int((x != y).sum())
                s.changed["kept"] += n
                s.tokens["kept"] += x.size
                s.identical["kept"] += n == 0
            for kind, fn, name in (("matched", _partners, "tdm_matched"), ("clustered", _groups, "tdm_clusters")):
                if f"{name}_{i}" not in ref:
                    continue
                s.present.add(kind)
                n, total = _diff_maps(fn(ref, i, b), fn(test, i, b))
                s.changed[kind] += n
                s.tokens[kind] += total
                s.identical[kind] += n == 0


def selection_stages(names: list[str]) -> list[int]:
    return sorted({int(n.rsplit("_", 1)[1]) for n in names})


def _run(path, proto_names: list[str], images: np.ndarray, batch: int, threads: int | None):
    """``(logits [N, K], {selection: [N, ...]})`` of one graph over ``images`` (last batch padded, then cut)."""
    import onnx

    from ..export.selections import add_selection_outputs
    from ..runners.onnxrt import OnnxRuntimeRunner

    proto = add_selection_outputs(onnx.load(path), proto_names)
    count = len(images)
    pad = (-count) % batch
    if pad:
        images = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)])
    logits, sel = [], {n: [] for n in proto_names}
    with OnnxRuntimeRunner(proto, intra_op_threads=threads) as runner:
        for start in range(0, len(images), batch):
            out = runner.infer({"input": images[start:start + batch]})
            logits.append(out["logits"])
            for n in proto_names:
                sel[n].append(out[n])
    return (np.concatenate(logits)[:count], {n: np.concatenate(v)[:count] for n, v in sel.items()})


def compare(fp32_path: str, int8_path: str, images: ImageSet, batch: int, threads: int | None = None
            ) -> CompareReport:
    """Run both graphs on ``images`` and report agreement and token decisions (see the module docstring)."""
    import onnx

    from ..export.selections import graph_selections

    names = graph_selections(onnx.load(fp32_path, load_external_data=False))
    in_int8 = set(graph_selections(onnx.load(int8_path, load_external_data=False)))
    names = [n for n in names if n in in_int8]
    ref_logits, ref_sel = _run(fp32_path, names, images.images, batch, threads)
    q_logits, q_sel = _run(int8_path, names, images.images, batch, threads)
    top1 = float((ref_logits.argmax(1) == q_logits.argmax(1)).mean())
    k = min(5, ref_logits.shape[1])
    top5_ref = np.sort(np.argsort(-ref_logits, 1)[:, :k], 1)
    top5_q = np.sort(np.argsort(-q_logits, 1)[:, :k], 1)
    top5 = float((top5_ref == top5_q).all(1).mean())
    cos = (ref_logits * q_logits).sum(1) / (np.linalg.norm(ref_logits, axis=1) * np.linalg.norm(q_logits, axis=1)
                                            + 1e-12)
    stages = [StageDecisions(i) for i in selection_stages(names)]
    compare_decisions(ref_sel, q_sel, stages)
    return CompareReport(len(ref_logits), top1, top5, float(cos.mean()), float(cos.min()), stages)
