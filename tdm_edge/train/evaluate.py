"""Evaluation: top-1/top-5 on an ImageFolder, with the model's GMACs and token schedule."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import UsageError


def score(predict: Callable, loader, reduce: Callable[[list[float]], list[float]] | None = None) -> dict:
    """Top-1/top-5 accuracy in percent of ``predict(images) -> logits [B, classes]`` over ``loader``.

    ``reduce`` sums the counts over processes (DDP).
    """
    correct1 = correct5 = total = 0.0
    for images, targets in loader:
        logits = predict(images)  # [B, classes]
        targets = targets.to(logits.device)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # [B, k]
        hits = top == targets[:, None]  # [B, k]
        correct1 += hits[:, 0].sum().item()
        correct5 += hits.any(dim=1).sum().item()
        total += targets.numel()
    if reduce is not None:
        correct1, correct5, total = reduce([correct1, correct5, total])
    if total == 0:
        raise UsageError("no images to evaluate")
    return {"top1": round(100.0 * correct1 / total, 2), "top5": round(100.0 * correct5 / total, 2),
            "images": int(total)}


def evaluate(model, loader, device, reduce: Callable[[list[float]], list[float]] | None = None) -> dict:
    """Top-1/top-5 accuracy in percent of a PyTorch model over ``loader`` (see :func:`score`)."""
    import torch

    model.eval()
    with torch.inference_mode():
        return score(lambda images: model(images.to(device)), loader, reduce)


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


def run_eval_onnx(path: str, data: str, *, batch_size: int = 128, threads: int | None = None) -> dict:
    """Evaluate an exported (FP32) or calibrated (INT8) ``.onnx`` on an ImageFolder with ONNX Runtime's CPU.

    Labels and preprocessing come from the file's ``tdm_edge`` metadata; the images go through the same timm eval
    transform as :func:`run_eval`, so an FP32 export scores what its checkpoint scores. A static-batch model gets
    its last batch padded.
    """
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from .data import check_labels, eval_transform, image_folder, scan_image_folder
    from ..export.onnx_export import INPUT_NAME, OUTPUT_NAME, read_metadata
    from ..runners.onnxrt import OnnxRuntimeRunner

    if not os.path.isfile(path):
        raise UsageError(f"ONNX model not found: {path}")
    meta = read_metadata(path)
    labels = meta.get("labels")
    if not labels:
        raise UsageError(f"{path} records no labels; export it from a checkpoint written by tdm-edge train")
    check_labels(scan_image_folder(data), labels, f"the labels of {os.path.basename(path)}", data)
    static = meta.get("onnx", {}).get("batch")  # None: a dynamic batch
    loader = DataLoader(image_folder(data, eval_transform(meta["preprocessing"])), batch_size=static or batch_size)

    def predict(images):  # [B, 3, H, W] -> [B, classes]
        count = images.shape[0]
        feed = images.numpy()
        if static and count < static:
            feed = np.concatenate([feed, np.zeros((static - count, *feed.shape[1:]), feed.dtype)])
        return torch.from_numpy(runner.infer({INPUT_NAME: feed})[OUTPUT_NAME][:count])

    with OnnxRuntimeRunner(path, intra_op_threads=threads) as runner:
        metrics = score(predict, loader)
    reduction = meta.get("reduction", {})
    quantization = meta.get("quantization")
    return {**metrics, "precision": "int8" if quantization else meta.get("precision", "fp32"),
            "int8_target": quantization["target"] if quantization else None,
            "method": reduction.get("method", "none"), "keep_rate": reduction.get("keep_rate", 1.0),
            "stage_tokens": reduction.get("stage_tokens"), "labels": labels, "onnx": os.fspath(path),
            "data": os.fspath(data)}


def format_eval(result: dict) -> str:
    """The human-readable eval summary (``top-1`` first)."""
    head = (f"top-1: {result['top1']:.2f} %   top-5: {result['top5']:.2f} %   ({result['images']} images, "
            f"{len(result['labels'])} classes)")
    if "onnx" in result:  # an ONNX Runtime evaluation: no PyTorch model to count GMACs on
        target = result["int8_target"]
        precision = result["precision"].upper() + (f" ({target} target)" if target else "")
        return "\n".join([head, f"ONNX Runtime CPU, {precision}   method {result['method']}, keep rate "
                                f"{result['keep_rate']:g}, tokens {' -> '.join(map(str, result['stage_tokens']))}"])
    return "\n".join([
        head,
        f"GMACs: {result['gmacs']:.4f} (unpruned {result['unpruned_gmacs']:.4f})   method {result['method']}, "
        f"keep rate {result['keep_rate']:g}, tokens {' -> '.join(map(str, result['stage_tokens']))}",
    ])
