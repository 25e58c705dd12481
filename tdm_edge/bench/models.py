"""The compared models, built from one set of weights so that only the token reduction differs between them.

- ``unpruned``: the model with ``method="none"``;
- ``pruned``: the reduction under test (BAT, EViT or ToMe at a keep rate);
- ``ideal``: the pruned model's schedule with every stage replaced by ``method="slice"`` (keep the first tokens):
  the same token counts with a free selection, the floor any selection method can reach on a backend;
- optional extras (``evit`` beside BAT, for scale).
"""

from __future__ import annotations

import dataclasses

import torch

from ..provenance import record_weights, weights_of
from ..reduce.models import create_model


def ideal_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (patched) with every stage's method set to ``slice``, in place: same counts, selection for free."""
    schedule = model.tdm_schedule
    stages = tuple(dataclasses.replace(s, method="slice") for s in schedule.stages)
    for blk in model.blocks:
        if getattr(blk, "tdm_stage", None) is not None:
            blk.tdm_stage = dataclasses.replace(blk.tdm_stage, method="slice")
    model.tdm_schedule = dataclasses.replace(schedule, stages=stages)
    return model


def trained_like(model: torch.nn.Module, seed: int = 1, scale: float = 0.02) -> torch.nn.Module:
    """Add ``N(0, scale^2)`` noise to every parameter, in place.

    timm initialises LayerNorm scales to exactly 1 and biases to exactly 0; the exporter and onnx-simplifier then
    drop those Mul/Add nodes, which no trained checkpoint allows, and ONNX Runtime's LayerNorm fusion does not
    fire on the bare pattern (measured: 25 unfused LayerNorms of 7 nodes each). Perturbed weights give the graph a
    trained model has.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=gen))
    return model


def model_builder(name: str, checkpoint: str | None = None, **model_kwargs):
    """``build(method, keep_rate, checkpoint) -> model``: from a self-describing ``tdm-edge train`` checkpoint
    (its own architecture, ``name`` ignored) or from a timm name."""
    if checkpoint is not None:
        from ..train.trained import build_from_record, has_record, load_trained, read_record

        if has_record(checkpoint):
            record = read_record(checkpoint)

            def build_trained(method: str, keep_rate: float | None, ckpt: str | None) -> torch.nn.Module:
                reduction = {"method": method} if method == "none" else {"method": method, "keep_rate": keep_rate}
                if ckpt is None:
                    return build_from_record(record, **reduction)
                return load_trained(ckpt, **reduction)[0]

            return build_trained

    def build_timm(method: str, keep_rate: float | None, ckpt: str | None) -> torch.nn.Module:
        rate = {} if method == "none" else {"keep_rate": keep_rate}
        return create_model(name, method=method, checkpoint=ckpt, **rate, **model_kwargs)

    return build_timm


def compared_models(name: str, keep_rate: float, method: str = "bat", checkpoint: str | None = None,
                    extras: tuple[str, ...] = (), seed: int = 0, **model_kwargs) -> dict[str, torch.nn.Module]:
    """``{"unpruned", "pruned", "ideal", *extras}`` sharing one state_dict (the checkpoint's, else trained-like
    random weights drawn with ``seed``), in eval mode.

    Args:
        name: a timm model name (or a ``tdm_*`` variant).
        keep_rate: the pruned model's keep rate; the ideal slice takes its token counts.
        method: the reduction under test (``bat``, ``evit``, ``tome``).
        extras: further methods measured beside it at the same keep rate (e.g. ``("evit",)``).
        model_kwargs: passed to :func:`tdm_edge.reduce.models.create_model` (img_size, prune_blocks, ...).
    """
    torch.manual_seed(seed)
    build = model_builder(name, checkpoint, **model_kwargs)
    base = build("none", None, checkpoint)
    if checkpoint is None:
        trained_like(base, seed=seed + 1)
    state = base.state_dict()
    models = {"unpruned": base}
    for key, meth in (("pruned", method), ("ideal", "bat"), *((e, e) for e in extras)):
        model = build(meth, keep_rate, None)
        model.load_state_dict(state)
        record_weights(model, weights_of(base))
        models[key] = ideal_model(model) if key == "ideal" else model
    return {k: m.eval() for k, m in models.items()}
