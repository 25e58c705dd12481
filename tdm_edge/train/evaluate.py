"""Evaluation: top-1/top-5 on an ImageFolder, with the model's GMACs and token schedule."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import UsageError


def evaluate(model, loader, device, reduce: Callable[[list[float]], list[float]] | None = None) -> dict:
    """Top-1/top-5 accuracy in percent over ``loader``; ``reduce`` sums the counts over processes (DDP)."""
    import torch

    model.eval()
    correct1 = correct5 = total = 0.0
    with torch.inference_mode():
        for images, targets in loader:
            logits = model(images.to(device))  # [B, classes]
            targets = targets.to(device)
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # [B, k]
            hits = top == targets[:, None]  # [B, k]
            correct1 += hits[:, 0].sum().item()
            correct5 += hits.any(dim=1).sum().item()
            total += targets.numel()
    if reduce is not None:
        correct1, correct5, total = reduce([correct1, correct5, total])
    if total == 0:
        raise UsageError("no images to evaluate")
    return {"top1": round(100.0 * correct1 / total, 2), "top5": round(100.0 * correct5 / total, 2), "images": int(total)}


def run_eval(checkpoint: str, data: str, *, model_name: str | None = None, batch_size: int = 128, workers: int = 0,
             **reduction) -> dict:
    """Evaluate a trained model file on an ImageFolder; the file's own record supplies model, labels, schedule.

    Args:
        checkpoint: a ``model.safetensors``/``last.pth`` written by ``tdm-edge train`` (or any timm checkpoint when
            ``model_name`` is given; its classes are then the data folder's).
        data: an ImageFolder whose classes are the model's labels.
        reduction: method / keep_rate / cluster_ratio / knn / tome_r / prune_blocks overriding the recorded ones.
    Returns:
        top-1, top-5, images, GMACs (and the unpruned model's), the token schedule, the labels.
    """
    import torch
    from torch.utils.data import DataLoader

    from .data import check_labels, image_folder, scan_image_folder, transforms
    from .trained import load_trained, read_record
    from ..reduce.flops import flops_report

    classes = scan_image_folder(data)
    if model_name is not None:
        from .arch import create_train_model

        try:
            labels = read_record(checkpoint)["labels"]
        except UsageError:
            labels = classes
        settings = {k: v for k, v in reduction.items() if v is not None}
        model = create_train_model(model_name, len(labels), checkpoint=checkpoint, **settings).eval()
    else:
        model, record = load_trained(checkpoint, **reduction)
        labels = record["labels"]
    check_labels(classes, labels, f"the labels of {os.path.basename(checkpoint)}", data)
    loader = DataLoader(image_folder(data, transforms(model, training=False)), batch_size=batch_size,
                        num_workers=workers)
    metrics = evaluate(model, loader, torch.device("cpu"))
    report = flops_report(model, batch=1, name=model_name).as_dict()
    schedule = model.tdm_schedule
    return {**metrics, "gmacs": report["gmacs"], "unpruned_gmacs": report["baseline_gmacs"],
            "method": schedule.method, "keep_rate": schedule.keep_rate, "stage_tokens": schedule.stage_tokens,
            "labels": labels, "checkpoint": os.fspath(checkpoint), "data": os.fspath(data)}


def format_eval(result: dict) -> str:
    """The human-readable eval summary (``top-1`` first)."""
    return "\n".join([
        f"top-1: {result['top1']:.2f} %   top-5: {result['top5']:.2f} %   ({result['images']} images, "
        f"{len(result['labels'])} classes)",
        f"GMACs: {result['gmacs']:.4f} (unpruned {result['unpruned_gmacs']:.4f})   method {result['method']}, "
        f"keep rate {result['keep_rate']:g}, tokens {' -> '.join(map(str, result['stage_tokens']))}",
    ])
