"""The training loop: the BAT paper's fine-tuning recipe on timm's factories, multi-process through torchrun.

Defaults are the paper's fine-tuning recipe (METHOD.md): 30 epochs, AdamW, lr 2e-5 per 512 images (scaled by the
global batch), cosine to 2e-6, weight decay 1e-6, DeiT's mixup 0.8 / cutmix 1.0, no distillation. Everything comes
from timm: ``create_transform``, ``Mixup``, ``create_optimizer_v2``, ``create_scheduler_v2``. Training from
scratch can ramp the keep rate down from 1.0 as EViT does (``keep_warmup``): the model is re-patched per epoch.

Run under ``torchrun`` it becomes DistributedDataParallel (NCCL on GPUs, gloo on the CPU); ``batch_size`` is per
process. Rank 0 writes ``last.pth`` (model, optimizer, scheduler, epoch, history; atomically) after every epoch and
``model.safetensors`` (the best epoch, self-describing, see trained.py). ``resume`` continues from ``last.pth``
with the same optimizer and scheduler state; the data order and augmentation of epoch ``e`` depend only on
``(seed, e)``, so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..args import train_float
from ..errors import UsageError, first_line
from ..limits import CLUSTER_RATIO, KNN, TRAIN_FLOATS
from ..outputs import removed_if_failed, writable_folder


@dataclass
class TrainConfig:
    model: str
    data: str
    output: str
    val: str | None = None
    method: str = "bat"
    keep_rate: float = 0.7
    prune_blocks: tuple[int, ...] | None = None
    cluster_ratio: float = CLUSTER_RATIO
    knn: int = KNN
    tome_r: int | None = None
    finetune: str | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float | None = None  # absolute; default lr_per_512 * global batch / 512
    lr_per_512: float = 2e-5
    min_lr: float = 2e-6
    weight_decay: float = 1e-6
    opt: str = "adamw"
    warmup_epochs: int = 0
    warmup_lr: float = 1e-6
    keep_warmup: tuple[int, int] = (0, 0)  # (epochs at keep 1.0, epochs of the cosine ramp to keep_rate)
    mixup: float = 0.8
    cutmix: float = 1.0
    smoothing: float = 0.1
    scale: tuple[float, float] = (0.6, 1.0)
    hflip: float = 0.5
    workers: int = 0
    seed: int = 0
    resume: bool = False
    progress: bool = True
    history: list = field(default_factory=list)


def keep_rate_at(epoch: int, keep_rate: float, warmup: tuple[int, int]) -> float:
    """EViT's keep-rate warm-up: 1.0 for ``warmup[0]`` epochs, then a cosine ramp to ``keep_rate`` over ``warmup[1]``."""
    hold, ramp = warmup
    if epoch < hold:
        return 1.0
    if ramp <= 0 or epoch >= hold + ramp:
        return keep_rate
    t = (epoch - hold) / ramp
    return round(keep_rate + (1.0 - keep_rate) * 0.5 * (1.0 + math.cos(math.pi * t)), 4)


def check_config(cfg: TrainConfig) -> None:
    """Reject settings that cannot train, in one line, before anything is loaded."""
    from ..reduce.schedule import ScheduleError

    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise UsageError(f"need --epochs >= 1 and --batch-size >= 1, got {cfg.epochs} and {cfg.batch_size}")
    if len(cfg.keep_warmup) != 2 or min(cfg.keep_warmup) < 0:
        raise ScheduleError(f"--keep-warmup takes two epoch counts >= 0 (hold, ramp), got {cfg.keep_warmup}")
    if sum(cfg.keep_warmup) >= cfg.epochs and cfg.keep_warmup != (0, 0):
        raise ScheduleError(f"the keep-rate warm-up ({cfg.keep_warmup[0]} + {cfg.keep_warmup[1]} epochs) leaves no "
                            f"epoch at keep {cfg.keep_rate} in {cfg.epochs} epochs")
    if not 0.0 <= cfg.scale[0] <= cfg.scale[1] <= 1.0:
        raise UsageError(f"--scale must be two numbers 0 <= lo <= hi <= 1, got {cfg.scale}")
    for name in TRAIN_FLOATS:  # the options' own bounds (args.train_float), for callers of the Python API too
        value = getattr(cfg, name)
        if value is not None:
            try:
                train_float(name)(repr(value))
            except argparse.ArgumentTypeError as err:
                raise UsageError(str(err)) from None


class _Dist:
    """The process group torchrun describes in the environment (a single process without torchrun)."""

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _record(cfg: TrainConfig, labels: list[str], core, keep_rate: float) -> dict:
    from .arch import arch_of

    data = {k: core.pretrained_cfg.get(k) for k in ("input_size", "interpolation", "crop_pct", "crop_mode",
                                                     "mean", "std")}
    return {"model": cfg.model, "arch": arch_of(cfg.model, len(labels)), "labels": labels, "preprocessing": data,
            "reduction": {"method": cfg.method, "keep_rate": keep_rate, "prune_blocks": cfg.prune_blocks,
                          "cluster_ratio": cfg.cluster_ratio, "knn": cfg.knn, "tome_r": cfg.tome_r}}


def _save_checkpoint(path: Path, payload: dict) -> None:
    import tempfile

    import torch

    from .trained import atomic_replace

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        atomic_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _prepare_output(output: str, resume: bool) -> Path:
    out = writable_folder(output, "output folder")
    if not resume and (out / "last.pth").exists():
        raise UsageError(f"{out} already holds a training run (last.pth); pass --resume or choose another --output")
    if resume and not (out / "last.pth").exists():
        raise UsageError(f"nothing to resume: {out / 'last.pth'} does not exist")
    return out


def _load_resume(path: Path, device) -> dict:
    """The training state in ``last.pth``; a file that is not one (truncated, another format) is one line."""
    import torch

    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for a damaged file
        raise UsageError(f"cannot resume from {path}: not a readable training checkpoint "
                         f"({first_line(err, with_type=True)[:120]})") from None
    needed = ("model", "optimizer", "scheduler", "scaler", "epoch", "best_top1", "history", "record")
    missing = [k for k in needed if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise UsageError(f"cannot resume from {path}: not a tdm-edge training checkpoint (no {missing[0]!r})")
    return ckpt


def load_initial(model, path: str, labels: list[str]) -> None:
    """Load fine-tuning weights; a classifier of another size (e.g. ImageNet's) is left freshly initialised.

    A file that records labels (written by ``tdm-edge train``) must have the data's labels. Raises UsageError.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    from .data import check_labels
    from .trained import read_record
    from ..checkpoint import read_state_dict
    from ..errors import first_line

    try:
        recorded = read_record(path).get("labels")
    except UsageError:
        recorded = None  # a plain timm/DeiT checkpoint
    if recorded is not None:
        check_labels(labels, recorded, f"the labels of {path}", "the training data")
    state = read_state_dict(path)
    try:
        state = checkpoint_filter_fn(state, model)
    except Exception as err:
        raise UsageError(f"checkpoint {path} does not fit {type(model).__name__} ({first_line(err, with_type=True)})") from None
    own = model.state_dict()
    if recorded is None:  # a new classifier for our classes
        state = {k: v for k, v in state.items() if not (k.startswith("head.") and k in own and v.shape != own[k].shape)}
        state.update({k: v for k, v in own.items() if k.startswith("head.") and k not in state})
    bad = [k for k in own if k not in state or state[k].shape != own[k].shape] + [k for k in state if k not in own]
    if bad:
        shown = f"{bad[0]} {tuple(state[bad[0]].shape) if bad[0] in state else 'missing'}"
        raise UsageError(f"checkpoint {path} does not fit the model: {len(bad)} mismatched key(s), first {shown}")
    model.load_state_dict(state)


def train(cfg: TrainConfig, on_step: Callable[[int, int], None] | None = None) -> dict:
    """Train (or fine-tune) and return the final record with its history. Raises one-line UsageErrors.

    Args:
        cfg: the settings.
        on_step: called as ``on_step(epoch, step)`` after every optimizer step (tests use it to interrupt a run).
    """
    from . import data as D

    check_config(cfg)
    train_dir, val_dir = D.split_folders(cfg.data, cfg.val)
    labels = D.scan_image_folder(train_dir)
    D.check_labels(D.scan_image_folder(val_dir), labels, f"the training classes of {train_dir}", val_dir)
    with removed_if_failed(cfg.output):  # a run that fails before writing anything leaves no empty folder
        return _train(cfg, on_step, train_dir, val_dir, labels)


def _train(cfg: TrainConfig, on_step, train_dir: Path, val_dir: Path, labels: list[str]) -> dict:
    import torch
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from torch.utils.data import DataLoader, DistributedSampler
    from tqdm import tqdm

    from . import data as D
    from .arch import create_train_model
    from .evaluate import evaluate
    from .trained import save_trained
    from ..reduce.patch import patch_vit

    out = _prepare_output(cfg.output, cfg.resume)
    reduction = dict(prune_blocks=cfg.prune_blocks, cluster_ratio=cfg.cluster_ratio, knn=cfg.knn, tome_r=cfg.tome_r)
    _seed_everything(cfg.seed)  # the same initial weights in every process and every run with this seed
    core = create_train_model(cfg.model, len(labels), method=cfg.method, keep_rate=1.0)
    for epoch in range(cfg.epochs):  # every epoch's schedule must build before the first one runs
        patch_vit(core, method=cfg.method, keep_rate=keep_rate_at(epoch, cfg.keep_rate, cfg.keep_warmup), **reduction)
    if cfg.finetune is not None:
        load_initial(core, cfg.finetune, labels)
    dist = _Dist()
    try:
        core = core.to(dist.device)
        model = core
        if dist.world > 1:
            model = torch.nn.parallel.DistributedDataParallel(core, device_ids=[dist.local_rank]
                                                              if dist.device.type == "cuda" else None)
        train_set = D.image_folder(train_dir, D.transforms(core, training=True, scale=cfg.scale, hflip=cfg.hflip))
        val_set = D.image_folder(val_dir, D.transforms(core, training=False))
        sampler = DistributedSampler(train_set, num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                            drop_last=True, persistent_workers=cfg.workers > 0)
        if len(loader) == 0:
            raise UsageError(f"{len(train_set)} training images are fewer than one batch of {cfg.batch_size} "
                             f"x {dist.world} process(es)")
        val_index = list(range(dist.rank, len(val_set), dist.world))  # every image exactly once over all ranks
        val_loader = DataLoader(torch.utils.data.Subset(val_set, val_index), batch_size=cfg.batch_size * 2,
                                num_workers=cfg.workers)

        global_batch = cfg.batch_size * dist.world
        lr = cfg.lr if cfg.lr is not None else cfg.lr_per_512 * global_batch / 512
        optimizer = create_optimizer_v2(core, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay)
        scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=cfg.epochs, min_lr=cfg.min_lr,
                                           warmup_lr=cfg.warmup_lr, warmup_epochs=cfg.warmup_epochs,
                                           step_on_epochs=False, updates_per_epoch=len(loader))
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing,
                      num_classes=len(labels)) if cfg.mixup > 0 or cfg.cutmix > 0 else None
        criterion = SoftTargetCrossEntropy() if mixup else LabelSmoothingCrossEntropy(cfg.smoothing)
        amp = dist.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)

        start, best, history = 0, -1.0, []
        if cfg.resume:
            ckpt = _load_resume(out / "last.pth", dist.device)
            if ckpt["record"]["labels"] != labels or ckpt["record"]["model"] != cfg.model or \
                    ckpt["record"]["reduction"]["method"] != cfg.method:
                raise UsageError(f"{out / 'last.pth'} is a run of {ckpt['record']['model']} "
                                 f"({ckpt['record']['reduction']['method']}, {len(ckpt['record']['labels'])} "
                                 f"classes), not of {cfg.model} ({cfg.method}, {len(labels)} classes)")
            core.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            start, best, history = ckpt["epoch"] + 1, ckpt["best_top1"], ckpt["history"]

        for epoch in range(start, cfg.epochs):
            keep = keep_rate_at(epoch, cfg.keep_rate, cfg.keep_warmup)
            patch_vit(core, method=cfg.method, keep_rate=keep, **reduction)
            _seed_everything(cfg.seed * 100003 + epoch * 1009 + dist.rank)
            sampler.set_epoch(epoch)
            model.train()
            seen, loss_sum = 0, 0.0
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs} keep {keep:g}", leave=False,
                       disable=not (cfg.progress and dist.main), file=sys.stderr)
            for step, (images, targets) in enumerate(bar):
                images, targets = images.to(dist.device), targets.to(dist.device)
                if mixup is not None:
                    images, targets = mixup(images, targets)
                with torch.autocast(dist.device.type, dtype=torch.float16, enabled=amp):
                    loss = criterion(model(images), targets)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step_update(epoch * len(loader) + step + 1)
                seen += images.shape[0]
                loss_sum += loss.item() * images.shape[0]
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                if on_step is not None:
                    on_step(epoch, step)
            scheduler.step(epoch + 1)
            loss_sum, seen = dist.all_sum([loss_sum, float(seen)])
            metrics = evaluate(core, val_loader, dist.device, reduce=dist.all_sum)
            entry = {"epoch": epoch, "keep_rate": keep, "train_loss": round(loss_sum / seen, 4),
                     "lr": optimizer.param_groups[0]["lr"], **metrics}
            history.append(entry)
            if dist.main:
                record = _record(cfg, labels, core, keep)
                if metrics["top1"] > best and keep == cfg.keep_rate:
                    best = metrics["top1"]
                    save_trained(out / "model.safetensors", core.state_dict(),
                                 dict(record, top1=metrics["top1"], top5=metrics["top5"], epoch=epoch,
                                      val=str(val_dir), config={k: v for k, v in asdict(cfg).items()
                                                                if k != "history"}))
                _save_checkpoint(out / "last.pth", {
                    "model": core.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                    "best_top1": best, "history": history, "record": record, "world_size": dist.world})
                print(f"epoch {epoch + 1}/{cfg.epochs}: keep {keep:g}, loss {entry['train_loss']:.4f}, "
                      f"val top-1 {metrics['top1']:.2f} %, top-5 {metrics['top5']:.2f} %", flush=True)
        return {"best_top1": best, "history": history, "output": str(out)}
    finally:
        dist.close()
