"""``--model`` + ``--backend`` -> a runner and the model's metadata.

``.engine`` -> TensorRT (:class:`tdm_edge.runners.tensorrt.TensorRTRunner`, imported only here), ``.onnx`` -> ONNX
Runtime, a timm model name (with ``--checkpoint``) -> PyTorch on the CPU (``torch``) or CUDA (``torch-cuda``).
``auto`` picks by the model. Without ``--model`` the model is the ``--checkpoint``'s own (a file written by
``tdm-edge train`` records its architecture), or else the shipped demo model; both run on PyTorch. Every mismatch is
one line (exit 2). Preprocessing and labels always come from the model's metadata; random weights are warned about.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from ..args import given_model_options
from ..errors import UsageError
from ..metadata import engine_metadata, read_metadata
from ..provenance import warn_if_random
from ..runners.base import Runner
from ..sides import require_workstation

BACKENDS = ("auto", "trt", "ort", "torch", "torch-cuda")
TRT_HINT = ("TensorRT is not installed here: an .engine needs it (JetPack on a Jetson, or pip install "
            "'tdm-edge[trt]' with a CUDA GPU); run the .onnx with --backend ort instead")
NO_RECORD = ("{checkpoint} does not say which model it holds (it was not written by tdm-edge train): give --model, "
             "the timm name it was trained as")


@dataclass
class LoadedModel:
    runner: Runner
    meta: dict
    backend: str
    selections: list[str] = field(default_factory=list)  # outputs the token map reads


def _mismatch(model: str, backend: str, needs: str) -> UsageError:
    return UsageError(f"--backend {backend} cannot run {model}: {needs}")


def load_model(args: argparse.Namespace) -> LoadedModel:
    """Resolve ``args.model`` / ``args.backend`` (and ``args.show_tokens``, ``args.threads``) to a runner."""
    model, backend = args.model, args.backend
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    device = "cuda" if backend == "torch-cuda" else "cpu"
    suffix = Path(model or "").suffix.lower()
    if suffix in (".onnx", ".engine", ".plan", ".trt") and not Path(model).is_file():
        raise UsageError(f"model not found: {model}")
    fixed = given_model_options(args) if suffix in (".onnx", ".engine", ".plan", ".trt") else []
    if fixed:  # an exported model's method, keep rate and sizes were fixed by tdm-edge export
        raise UsageError(f"{', '.join(fixed)} {'does' if len(fixed) == 1 else 'do'} not apply to {Path(model).name}: "
                         "an exported model keeps the settings it was exported with (export again to change them)")
    if not model:
        _default_checkpoint(args)
        loaded = _load_torch(args, device)
    elif suffix == ".onnx" and backend == "trt":  # engine on first run, cached (tdm_edge.engine.cache, H4)
        from ..engine.cache import engine_for_args

        loaded = _load_engine(str(engine_for_args(model, args)), args)
    elif suffix == ".onnx":
        if backend not in ("auto", "ort"):
            raise _mismatch(model, backend, "an .onnx model runs on ONNX Runtime (--backend ort); build an .engine "
                            "for trt, or give a timm name for torch")
        loaded = _load_onnx(model, args)
    elif suffix in (".engine", ".plan", ".trt"):
        if backend not in ("auto", "trt"):
            raise _mismatch(model, backend, "a TensorRT engine runs only on --backend trt")
        loaded = _load_engine(model, args)
    elif Path(model).exists():
        raise UsageError(f"cannot tell how to run {model}: expected .onnx, .engine or a timm model name")
    else:
        if backend in ("trt", "ort"):
            raise _mismatch(model, backend, "a timm model name runs on torch or torch-cuda; export it to .onnx "
                            "(tdm-edge export) for ort")
        loaded = _load_torch(args, device)
    warn_if_random(loaded.meta, "run")
    return loaded


def _default_checkpoint(args: argparse.Namespace) -> None:
    """No ``--model``: check that ``--checkpoint`` records its model, or set it to the shipped demo model."""
    import sys

    if args.backend in ("trt", "ort"):
        raise _mismatch("a checkpoint", args.backend, "give the exported model with --model (tdm-edge export / "
                        "build); a checkpoint runs on torch or torch-cuda")
    require_workstation("run without --model (a checkpoint runs on PyTorch)")
    from ..train.trained import demo_model_path, has_record

    if args.checkpoint is None:
        args.checkpoint = str(demo_model_path())
        print(f"tdm-edge run: no --model: using the shipped demo model ({args.checkpoint})", file=sys.stderr)
    elif not Path(args.checkpoint).is_file():
        raise UsageError(f"checkpoint not found: {args.checkpoint}")
    if not has_record(args.checkpoint):
        raise UsageError(NO_RECORD.format(checkpoint=args.checkpoint))


def _check_reduction(meta: dict) -> None:
    from .tokens import MAPPED_METHODS

    method = meta.get("reduction", {}).get("method", "none")
    if method not in MAPPED_METHODS:
        raise UsageError(f"--show-tokens maps bat and evit models; this one is {method!r}")


def _load_onnx(path: str, args: argparse.Namespace) -> LoadedModel:
    from ..runners.onnxrt import OnnxRuntimeRunner

    meta = read_metadata(path)
    source: object = path
    names: list[str] = []
    if args.show_tokens:
        try:
            import onnx
        except ImportError:
            raise UsageError("--show-tokens on an .onnx needs the onnx package to add the selection outputs: "
                             "pip install onnx") from None
        from ..runners.selections import add_selection_outputs, output_selections

        _check_reduction(meta)
        proto = add_selection_outputs(onnx.load(path))  # in memory; no-op for an export with --selection-outputs
        source, names = proto, output_selections(proto)
    return LoadedModel(OnnxRuntimeRunner(source, intra_op_threads=args.threads), meta, "ort", names)


def _load_engine(path: str, args: argparse.Namespace) -> LoadedModel:
    try:
        from ..runners.tensorrt import TensorRTRunner  # another stage's module; absent without TensorRT support
        import tensorrt  # noqa: F401  (the runner imports it on activation; fail here with one line instead)
    except ImportError:
        raise UsageError(TRT_HINT) from None
    meta = engine_metadata(path)
    names = []
    if args.show_tokens:
        _check_reduction(meta)
        names = [o["name"] for o in meta.get("onnx", {}).get("outputs", []) if o["name"].startswith("tdm_")]
        if not names:
            raise UsageError(f"{path} has no selection outputs; export with --selection-outputs and rebuild it")
    from ..engine.cache import runner_options

    return LoadedModel(TensorRTRunner(path, **runner_options(args)), meta, "trt", names)


def _load_torch(args: argparse.Namespace, device: str) -> LoadedModel:
    require_workstation(f"run --backend {args.backend if args.backend != 'auto' else 'torch'} (a timm model)")
    import torch

    from ..train.trained import model_from_args
    from ..export.onnx_export import build_metadata
    from ..export.verify import SelectionProbe, run_with_selections
    from ..provenance import weights_record
    from ..runners.pytorch import PyTorchRunner, vit_input_metadata

    if device == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--backend torch-cuda needs a CUDA GPU, and none is visible; use --backend torch")
    model = model_from_args(args).eval()  # a recorded checkpoint sets args.model and args.labels
    meta = build_metadata(model, name=args.model, batch=1, opset=17, labels=getattr(args, "labels", None))
    meta["weights"] = weights_record(args.checkpoint)
    names: list[str] = []
    module: torch.nn.Module = model
    if args.show_tokens:
        _check_reduction(meta)
        _, selections, _ = run_with_selections(model, torch.zeros(1, *meta["preprocessing"]["input_size"]))
        names = list(selections)
        module = SelectionProbe(model)
    outputs = ("logits", *names)
    if device == "cuda":  # fp16 + a CUDA graph, and the fused merge op unless the token map needs the probes
        from ..runners.torch_cuda import TorchCudaRunner

        runner: Runner = TorchCudaRunner(module, fp16=True, cuda_graph=True,
                                         fused_merge=False if args.show_tokens else "auto",
                                         input_metadata=vit_input_metadata(model, batch=1), output_names=outputs)
        return LoadedModel(runner, meta, "torch-cuda", names)
    runner = PyTorchRunner(module, vit_input_metadata(model), output_names=outputs, device=device)
    return LoadedModel(runner, meta, "torch", names)
