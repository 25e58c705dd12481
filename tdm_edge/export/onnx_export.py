"""ONNX export with static per-stage token counts, verification, graph clean-up and metadata.

Exporter: ``torch.onnx.export(..., dynamo=False)``, the TorchScript tracer. Tracing runs the patched model once
with concrete shapes, so every token count is the Python int fixed at patch time and lands in the graph as a
constant (TopK with a constant K, Slice/Gather with constant indices, MatMul with static shapes); nothing
data-dependent survives (no NonZero, no scatter). It writes opset 17, the newest opset TensorRT 8.5 (JetPack 5)
parses. The dynamo exporter (``dynamo=True``) was tried with the same model: it only emits opset >= 18, its
down-conversion to 17 fails on this graph (Reduce* axes as inputs), and it took ~15x longer on a tiny ViT.

After tracing, onnx-simplifier (constant folding, shape-op elimination, dead-code removal) cleans the graph; the
node counts before and after are reported. The model's description travels with it, in the ONNX
``metadata_props`` under the key ``tdm_edge`` and in a sidecar ``OUT.json`` (same JSON): where the weights came
from (``"random"`` or the checkpoint's file name and sha256), per-stage token counts and the settings that built
them, preprocessing from timm's data config (RGB channel order), labels when known, the verification result,
opset, input/output shapes, tool versions. Both files are written to temporary names in the target directory and
renamed together once complete (:mod:`tdm_edge.outputs`), with the permissions the umask gives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import UsageError
from ..limits import OPSETS
from ..outputs import check_output_path as _check_path, sidecar_path, write_files
from ..provenance import describe_weights, weights_of
from ..reduce.patch import count_tokens, schedule_of
from ..lint.precision import fp32_layers
from ..metadata import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, read_metadata  # noqa: F401 (re-exported)
from . import fp16
from .layer_norm import decomposed_layer_norm
from .verify import SelectionProbe, VerificationError, VerifyReport, run_with_selections, verify



# Verification limits per export precision: ``atol`` on the logits (ONNX Runtime vs fp32 PyTorch), and the
# near-tie tolerance of a decoupling order relative to the largest importance (see verify.verify): for fp16 one
# fp16 step (2^-10 relative), i.e. two importances fp16 could not tell apart at the scale of the largest.
VERIFY_TOLERANCES = {"fp32": {"atol": 1e-4, "order_rtol": 1e-6}, "fp16": {"atol": 1e-2, "order_rtol": 2.0 ** -10}}


@dataclass
class ExportReport:
    path: str
    sidecar: str | None
    opset: int
    batch: int | None  # None: dynamic batch
    nodes_before: int
    nodes_after: int
    ops_after: dict[str, int]
    simplified: bool
    verification: VerifyReport | None
    metadata: dict
    seconds: float

    def summary(self) -> str:
        stages = self.metadata["reduction"]["stage_tokens"]
        lines = [f"wrote {self.path} (+ {self.sidecar})" if self.sidecar else f"wrote {self.path}",
                 f"  opset {self.opset}, {self.metadata.get('precision', 'fp32')}, "
                 f"batch {'dynamic' if self.batch is None else self.batch}, "
                 f"tokens per stage {' -> '.join(map(str, stages))}",
                 f"  nodes: {self.nodes_before} traced -> {self.nodes_after} after "
                 f"{'simplification' if self.simplified else 'export (not simplified)'}",
                 f"  verification: {self.verification.summary() if self.verification else 'skipped'}",
                 f"  weights: {describe_weights(self.metadata)}",
                 f"  export took {self.seconds:.1f} s"]
        return "\n".join(lines)


def check_output_path(path: str | os.PathLike, sidecar: bool = True, force: bool = False) -> Path:
    """Raise :class:`UsageError` unless the ``.onnx`` (and its sidecar ``.json``) can be written; no torch needed.

    See :func:`tdm_edge.outputs.check_output_path`: the name ends in ``.onnx``, neither path is a directory or
    another non-regular file, the directory exists and is writable.
    """
    path = _check_path(path, suffix=".onnx", force=force)
    if sidecar:
        _check_path(sidecar_path(path), what="sidecar", force=force)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    """One file written atomically with umask permissions (kept for callers of the old name; see outputs)."""
    write_files({path: data})


def _check_model(model: torch.nn.Module) -> None:
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise UsageError(f"export needs a timm VisionTransformer, got {type(model).__name__}")
    if getattr(model.patch_embed, "img_size", None) is None or getattr(model, "dynamic_img_size", False):
        raise UsageError("export needs a fixed image size; create the model without dynamic_img_size")
    schedule = schedule_of(model)
    if schedule is not None and any(s.method == "random" for s in schedule.stages):
        raise UsageError("method 'random' draws new tokens on every run and cannot be verified; "
                         "export bat, evit, tome or none")


def build_metadata(model: torch.nn.Module, *, name: str | None, batch: int | None, opset: int,
                   labels: list[str] | None = None, native_layer_norm: bool = False,
                   weights: str | dict | None = None, precision: str = "fp32") -> dict:
    """The JSON that travels with an exported model (also returned in :class:`ExportReport`).

    ``weights`` (default: what the model recorded, :func:`tdm_edge.provenance.weights_of`) is ``"random"`` or
    ``{"file", "sha256"}``; ``verification`` is filled in by :func:`export_onnx` once it has run.
    """
    import onnx
    import timm
    from timm.data import resolve_data_config

    chans = model.patch_embed.proj.in_channels
    height, width = model.patch_embed.img_size
    # timm's own config, with the input size the model was built for (pretrained_cfg keeps the original size)
    data = resolve_data_config({"input_size": (chans, height, width)}, model=model)
    schedule = schedule_of(model)
    num_tokens = count_tokens(model)
    label_source = "caller" if labels is not None else None
    if labels is None and model.num_classes == 1000:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        labels = [info.index_to_description(i) for i in range(1000)]
        label_source = "timm ImageNetInfo (ImageNet-1k class descriptions)"
    if labels is not None and len(labels) != model.num_classes:
        raise UsageError(f"{len(labels)} labels for a classifier with {model.num_classes} classes")
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return {
        "format": "tdm-edge-onnx/1",
        "tool": {"name": "tdm-edge", "version": __version__, "torch": torch.__version__.split("+")[0],
                 "timm": timm.__version__, "onnx": onnx.__version__, "exporter": "torch.onnx (TorchScript)"},
        "layer_norm": "native" if native_layer_norm else "decomposed",
        "precision": precision,
        "model": {"name": name or cfg.get("architecture"), "num_classes": model.num_classes,
                  "embed_dim": model.embed_dim, "depth": len(model.blocks),
                  "num_heads": model.blocks[0].attn.num_heads, "patch_size": list(model.patch_embed.patch_size)},
        "weights": weights_of(model) if weights is None else weights,
        "reduction": {
            "method": schedule.method if schedule else "none",
            "keep_rate": schedule.keep_rate if schedule else 1.0,
            "stage_tokens": schedule.stage_tokens if schedule else [num_tokens],
            "block_tokens": schedule.block_tokens if schedule else [num_tokens] * len(model.blocks),
            "settings": _settings(schedule),
            "stages": [dataclasses.asdict(s) for s in schedule.stages] if schedule else [],
        },
        "verification": {"status": "skipped"},
        "onnx": {"opset": opset, "batch": batch, "dynamic_batch": batch is None,
                 "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": [batch, chans, height, width]}],
                 "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": [batch, model.num_classes]}]},
        "preprocessing": {"input_size": list(data["input_size"]), "interpolation": data["interpolation"],
                          "crop_pct": data["crop_pct"], "crop_mode": data["crop_mode"],
                          "mean": [float(v) for v in data["mean"]], "std": [float(v) for v in data["std"]],
                          "layout": "NCHW", "channel_order": "RGB", "pixel_range": [0.0, 1.0]},
        "labels": labels,
        "label_source": label_source,
    }


def _settings(schedule) -> dict:
    """The settings that built the schedule (``None`` where one does not apply to the method)."""
    settings = getattr(schedule, "settings", None)
    if settings is None:
        return {"prune_blocks": None, "cluster_ratio": None, "knn": None, "tome_r": None}
    record = dataclasses.asdict(settings)
    if record["prune_blocks"] is not None:
        record["prune_blocks"] = list(record["prune_blocks"])
    return record


def verification_record(report: VerifyReport | None) -> dict:
    """What the metadata says about verification: passed/skipped, max abs diff, selections identical on k/n."""
    if report is None:
        return {"status": "skipped"}
    return {"status": "passed" if report.ok else "failed", "atol": report.atol,
            "max_abs_diff": float(report.max_abs_diff), "inputs": len(report.checks),
            "images": sum(c.batch for c in report.checks),
            "top1_identical": all(c.top1_equal for c in report.checks),
            "selections_compared": report.selections_compared,
            "selections_identical": f"{sum(c.selections_equal for c in report.checks)}/{len(report.checks)}"}


def _trace(model: torch.nn.Module, example: torch.Tensor, names: list[str], opset: int, dynamic: bool,
           native_layer_norm: bool = False, precision: str = "fp32"):
    """Trace ``SelectionProbe(model)`` to an ONNX ModelProto with outputs ``logits`` + the selection ``names``.

    ``precision="fp16"`` traces an fp16 copy with fp32 edges, LayerNorms and token selection (:mod:`.fp16`).
    """
    import onnx

    outputs = [OUTPUT_NAME, *names]
    axes = {n: {0: "batch"} for n in [INPUT_NAME, *outputs]} if dynamic else None
    buf = io.BytesIO()
    layer_norm = contextlib.nullcontext() if native_layer_norm or opset < 17 else decomposed_layer_norm(opset)
    selection = contextlib.nullcontext()
    if precision == "fp16":
        model, selection = fp16.HalfEdges(fp16.half_copy(model)), fp16.fp32_selection()
    with warnings.catch_warnings(), layer_norm, selection:
        warnings.simplefilter("ignore")  # TracerWarnings from timm's shape asserts and the exporter's deprecation note
        torch.onnx.export(SelectionProbe(model), (example,), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=outputs, dynamic_axes=axes,
                          do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def _simplify(traced, native_layer_norm: bool):
    """onnx-simplifier's graph and True, or the traced graph and False when it fails (reported, not fatal)."""
    import onnxsim

    try:
        skip = None if native_layer_norm else ["fuse_layer_norm"]  # keep LayerNorm decomposed for TRT 8.5
        candidate, ok = onnxsim.simplify(traced, skipped_optimizers=skip)
    except Exception as err:  # the traced graph is valid: keep it
        warnings.warn(f"onnx-simplifier failed ({type(err).__name__}: {err}); keeping the traced graph")
        return traced, False
    return (candidate, True) if ok else (traced, False)


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, batch: int = 1, dynamic_batch: bool = False,
                opset: int = 17, verify: bool = True, simplify: bool = True, name: str | None = None,
                labels: list[str] | None = None, atol: float | None = None, sidecar: bool = True,
                verify_threads: int | None = None, native_layer_norm: bool = False, precision: str = "fp32",
                merge: str = "ops", selection_outputs: bool = False, weights: str | dict | None = None,
                progress: Callable[[str, str], None] | None = None) -> ExportReport:
    """Export a (patched) timm ViT to ONNX with static token counts and check it against PyTorch.

    Args:
        model: a timm ``VisionTransformer``, patched by :func:`tdm_edge.reduce.patch.patch_vit` or not (= unpruned).
        path: the ``.onnx`` file to write; the sidecar JSON goes beside it (``OUT.json``). Both appear together
            or not at all, with the permissions the umask gives; nothing is replaced when the export fails.
        batch: the static batch size; ignored with ``dynamic_batch``.
        dynamic_batch: make the batch the one dynamic axis (all others stay static).
        opset: ONNX opset (17 by default: TensorRT 8.5 parses up to 17).
        verify: run ONNX Runtime against PyTorch (random + structured inputs): max abs diff <= ``atol``, same
            top-1, same token selections; a mismatch raises :class:`VerificationError` and writes no file.
            An fp16 export is verified against the fp32 PyTorch model with fp16's tolerances
            (:data:`VERIFY_TOLERANCES`).
        simplify: clean the graph with onnx-simplifier.
        name: model name for the metadata (default: timm's architecture name).
        labels: class names (default: ImageNet-1k descriptions from timm when the model has 1000 classes).
        native_layer_norm: keep ONNX LayerNormalization (TensorRT >= 8.6); by default it is written out in
            elementary ops so that TensorRT 8.5 parses the graph (ONNX Runtime and TensorRT 10 fuse it back).
        precision: ``fp32`` or ``fp16`` (:mod:`tdm_edge.export.fp16`: fp16 weights and activations, fp32 input
            and logits, LayerNorms and token selection in fp32 by explicit Casts; what TensorRT 11 builds in fp16).
            Either way the metadata's ``fp32_layers`` names the nodes a build with the FP16 builder flag pins.
        merge: ``ops`` (standard ONNX ops) or ``plugin`` (one TdmBatMerge node per BAT stage, see plugin_graph.py).
        selection_outputs: also output the token selections (:mod:`tdm_edge.export.selections`); ``merge="ops"`` only.
        weights: where the weights came from, ``"random"`` or ``{"file", "sha256"}``
            (:func:`tdm_edge.provenance.weights_record`); default: what the model recorded when
            :func:`tdm_edge.checkpoint.load_checkpoint` loaded it, else ``"random"``.
        progress: called as ``progress(stage, detail)`` when each stage starts (trace, simplify, verify, write).
    Returns:
        :class:`ExportReport`. Raises :class:`UsageError` (one line) for bad settings or an unwritable path.
    """
    import onnx

    start = time.perf_counter()
    report_stage = progress or (lambda stage, detail: None)
    path = check_output_path(path, sidecar, force=True)  # write protection is the command line's to police
    _check_model(model)
    if merge != "ops":  # --merge plugin: tdm_edge/export/plugin_graph.py
        from . import plugin_graph
        plugin_graph.check_merge(model, merge)
        if selection_outputs:
            raise UsageError("--selection-outputs needs --merge ops: a plugin node computes the selections inside")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"batch must be a positive integer, got {batch!r}")
    if precision not in fp16.PRECISIONS:
        raise UsageError(f"precision {precision!r} not supported; choose {' or '.join(fp16.PRECISIONS)}")
    if precision == "fp16" and merge != "ops":
        raise UsageError("--precision fp16 needs --merge ops: the TdmBatMerge plugin graph is fp32")
    if native_layer_norm and opset < 17:
        raise UsageError(f"--native-layer-norm needs opset 17 or later (LayerNormalization), got {opset}")
    if opset not in OPSETS:
        raise UsageError(f"opset {opset} not supported; choose {OPSETS.start}..{OPSETS.stop - 1} "
                         "(TensorRT 8.5 parses up to 17)")
    static_batch = None if dynamic_batch else batch
    metadata = build_metadata(model, name=name, batch=static_batch, opset=opset, labels=labels,
                              native_layer_norm=native_layer_norm, weights=weights, precision=precision)
    atol = VERIFY_TOLERANCES[precision]["atol"] if atol is None else atol
    was_training = model.training
    model.eval()
    try:
        chans, height, width = metadata["preprocessing"]["input_size"]
        example = torch.randn(2 if dynamic_batch else batch, chans, height, width,
                              generator=torch.Generator().manual_seed(0))
        report_stage("trace", f"TorchScript exporter, opset {opset}, {precision}")
        _, selections, _ = run_with_selections(model, example)
        traced = _trace(model, example, list(selections), opset, dynamic_batch, native_layer_norm, precision)
        del traced.graph.output[1:]  # ship only the logits; the selections stay named inside the graph
        nodes_before = len(traced.graph.node)
        proto, simplified = traced, False
        if simplify:
            report_stage("simplify", f"onnx-simplifier on {nodes_before} nodes")
            proto, simplified = _simplify(traced, native_layer_norm)
        onnx.checker.check_model(proto)
        proto.producer_name, proto.producer_version = "tdm-edge", __version__
        report = None
        if verify:
            report_stage("verify", "ONNX Runtime against PyTorch, token selections included")
            report = _verify(model, proto, list(selections), metadata, static_batch, atol, verify_threads,
                             VERIFY_TOLERANCES[precision]["order_rtol"])
            if not report.ok:
                raise VerificationError(f"verification failed, nothing written: {report.summary()}")
        metadata["verification"] = verification_record(report)
        if merge == "plugin":  # the verified decomposed graph, its BAT stages traced as plugin nodes instead
            report_stage("plugin", "BAT stages as TdmBatMerge plugin nodes")
            proto = plugin_graph.to_plugin_graph(model, example, proto, metadata, opset=opset, dynamic=dynamic_batch,
                                                 native_layer_norm=native_layer_norm, verify=verify, atol=atol)
        if selection_outputs:  # the token map's inputs (tdm-edge run --show-tokens); updates metadata in place
            from .selections import add_selection_outputs

            proto = add_selection_outputs(proto, list(selections), metadata)
        metadata["fp32_layers"] = fp32_layers(proto)  # what a build with the FP16 builder flag pins
        del proto.metadata_props[:]
        proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    finally:
        model.train(was_training)
    side = sidecar_path(path) if sidecar else None
    report_stage("write", f"{path}" + (f" + {side}" if side else ""))
    files = {side: (json.dumps(metadata, indent=1) + "\n").encode()} if side else {}
    files[path] = proto.SerializeToString()  # last: a complete .onnx means a complete export
    try:
        write_files(files)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}; nothing written") from None
    return ExportReport(os.fspath(path), os.fspath(side) if side else None, opset, static_batch, nodes_before,
                        len(proto.graph.node), dict(Counter(n.op_type for n in proto.graph.node)), simplified,
                        report, metadata, time.perf_counter() - start)


def _verify(model, proto, selection_names, metadata, batch, atol, threads, order_rtol) -> VerifyReport:
    batches = [batch] if batch is not None else [1, 3]
    return verify(model, proto, selection_names, batches, metadata["preprocessing"], atol=atol,
                  intra_op_threads=threads, order_rtol=order_rtol)
