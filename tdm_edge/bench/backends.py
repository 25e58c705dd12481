"""What each backend runs, and the runner that times it.

:func:`prepare` turns the compared models into files a fresh process can load (an ONNX file, a saved module, an
engine) and returns one :class:`RunnerSpec` per model; :meth:`RunnerSpec.make` builds the runner inside the
measuring process. Heavy libraries are imported only by the backend that needs them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..errors import UsageError
from ..runners.base import Runner

BACKENDS = ("ort", "torch", "torch-cuda", "trt")
PRECISIONS = {"ort": ("fp32", "int8"), "torch": ("fp32",), "torch-cuda": ("fp32", "fp16"),
              "trt": ("fp32", "fp16", "int8")}


def check_backend(backend: str, precision: str) -> None:
    """One-line errors for an unknown backend or a precision the backend cannot run."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS[backend]:
        raise UsageError(f"backend {backend} cannot run {precision}; it runs {', '.join(PRECISIONS[backend])}")


# what each backend imports, looked up (never imported) before anything is exported or measured
BACKEND_MODULES = {"ort": ("onnxruntime", "pip install 'tdm-edge[ort]'"),
                   "trt": ("tensorrt", "JetPack's python3-libnvinfer on a Jetson, pip install 'tdm-edge[trt]' on "
                                       "x86_64 with a CUDA GPU"),
                   "torch": ("torch", "pip install 'tdm-edge[export]'"),
                   "torch-cuda": ("torch", "pip install 'tdm-edge[export]' with a CUDA build of torch")}


def require_backend(backend: str) -> None:
    """A one-line UsageError when the backend's library is not installed, before any model is built."""
    from importlib.util import find_spec

    module, fix = BACKEND_MODULES[backend]
    try:
        found = module in sys.modules or find_spec(module) is not None  # sys.modules: a stand-in in the tests
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(f"backend {backend} needs {module}, which is not installed here ({fix}); nothing was "
                         "exported or measured")


@dataclass(frozen=True)
class RunnerSpec:
    """A picklable recipe for one model's runner on one backend."""

    backend: str
    path: str
    precision: str = "fp32"
    threads: int | None = None
    plugins: tuple = ()  # trt: plugin libraries (default: the engine's sidecar's, found beside it)
    cuda: str = "auto"  # trt: the CUDA binding (auto | cuda-python | pycuda)

    def make(self) -> Runner:
        if self.backend == "ort":
            from ..runners.onnxrt import OnnxRuntimeRunner

            return OnnxRuntimeRunner(self.path, intra_op_threads=self.threads, inter_op_threads=1)
        if self.backend == "trt":
            from ..runners.tensorrt import TensorRTRunner

            return TensorRTRunner(self.path, plugins=list(self.plugins), cuda=self.cuda)
        return self._torch_runner()

    def _torch_runner(self) -> Runner:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        model = torch.load(self.path, weights_only=False)  # our own file, written by prepare() in this run
        if self.backend == "torch":
            from ..runners.pytorch import PyTorchRunner

            return PyTorchRunner(model)
        from ..runners.torch_cuda import TorchCudaRunner

        return TorchCudaRunner(model, fp16=self.precision == "fp16", cuda_graph=True)


def prepare(models: dict, backend: str, precision: str, batch: int, folder: str,
            threads: int | None = None, log=print, plugins: tuple = (), cuda: str = "auto") -> dict[str, RunnerSpec]:
    """Write what ``backend`` needs for every model into ``folder``; ``{key: RunnerSpec}`` in the same order."""
    import torch

    check_backend(backend, precision)
    if backend == "torch-cuda" and not torch.cuda.is_available():
        raise UsageError("backend torch-cuda needs a CUDA GPU, and torch sees none here; use --backend ort or torch")
    specs = {}
    for key, model in models.items():
        stem = os.path.join(folder, f"{key}_b{batch}")
        if backend in ("torch", "torch-cuda"):
            torch.save(model, stem + ".pt")
            specs[key] = RunnerSpec(backend, stem + ".pt", precision, threads)
            continue
        onnx_path = _export(model, stem + ".onnx", batch, key, threads, log)
        if backend == "ort":
            path = _quantize_cpu(onnx_path, stem + ".int8.onnx") if precision == "int8" else onnx_path
        else:
            path = _build_engine(onnx_path, stem + ".engine", precision, plugins, log)
        specs[key] = RunnerSpec(backend, path, precision, threads, tuple(plugins), cuda)
    return specs


def _export(model, path: str, batch: int, key: str, threads: int | None, log) -> str:
    from ..export.onnx_export import export_onnx

    # a model that selects tokens is verified against PyTorch (a benchmark of a wrong graph means nothing); the
    # baseline and the ideal slice have no selections to get wrong
    stages = getattr(getattr(model, "tdm_schedule", None), "stages", ())
    selects = any(s.method not in ("none", "slice") for s in stages)
    report = export_onnx(model, path, batch=batch, verify=selects, verify_threads=threads, sidecar=False)
    log(f"  [{key}] exported, {report.nodes_after} nodes; verification: "
        f"{report.verification.summary() if report.verification else 'skipped (no selections)'}")
    return path


def _quantize_cpu(onnx_path: str, out: str) -> str:
    from ..quantize import quantize_for_cpu

    quantize_for_cpu(onnx_path, out)
    return out


def _build_engine(onnx_path: str, out: str, precision: str, plugins=(), log=print) -> str:
    from ..engine.build import build_engine, log_lines

    report = build_engine(onnx_path, out, precision=precision, plugins=plugins)
    for line in log_lines(report.messages) + [f"warning: {n}" for n in report.notes]:  # TensorRT's, not swallowed
        log(f"  {line}")
    return out
