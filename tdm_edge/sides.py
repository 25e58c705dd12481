"""The two sides of tdm-edge, in one place: what runs on a Jetson (the device side) and what needs torch.

The **device side** (``build``, ``run`` of an ``.onnx``/``.engine``, ``bench`` of files, ``check``, ``doctor``)
imports numpy, onnx, onnxruntime, OpenCV, TensorRT and a CUDA binding at most, and runs on Python 3.8+. The
**workstation side** (reduce, export, quantize, train, the PyTorch runners) needs torch and timm and Python 3.10+.
``tests/test_device_side.py`` holds the code to this: every import in :data:`DEVICE_MODULES` (module level and
inside functions) is checked against :data:`FORBIDDEN` and :data:`WORKSTATION_MODULES`, except inside the functions
named in :data:`WORKSTATION_ENTRIES`, which are where a device command hands over to the workstation side; and each
device command runs in a process where importing a forbidden package fails.
"""

from __future__ import annotations

import sys
from importlib import util
from typing import Optional, Tuple

# third-party packages the device side never imports
FORBIDDEN: Tuple[str, ...] = ("torch", "timm", "torchvision", "safetensors", "onnxsim", "onnxscript")

# our modules that make up the device side; "pkg.*" is a package and every module below it. An exact name beats a
# package: ``tdm_edge.quantize.commands`` (a parser the CLI imports to list the commands) is device side although
# ``tdm_edge.quantize`` is not. tests/test_device_side.py checks that every module of tdm_edge is on one side.
DEVICE_MODULES: Tuple[str, ...] = (
    "tdm_edge", "tdm_edge.errors", "tdm_edge.limits", "tdm_edge.outputs", "tdm_edge.provenance",
    "tdm_edge.checkpoint", "tdm_edge.metadata", "tdm_edge.args", "tdm_edge.cli", "tdm_edge.sides",
    "tdm_edge.lint.*", "tdm_edge.engine.*", "tdm_edge.video.*", "tdm_edge.doctor.*", "tdm_edge.bench.*",
    "tdm_edge.runners.*", "tdm_edge.quantize.commands", "tdm_edge.train.commands",
)

# our modules that need torch (a device module may import them only inside a WORKSTATION_ENTRIES function)
WORKSTATION_MODULES: Tuple[str, ...] = (
    "tdm_edge.reduce.*", "tdm_edge.export.*", "tdm_edge.quantize.*", "tdm_edge.train.*", "tdm_edge.demo",
    "tdm_edge.model_catalog", "tdm_edge._catalog_data",  # `models`: what the workstation side can patch
    "tdm_edge.runners.pytorch", "tdm_edge.runners.torch_cuda", "tdm_edge.bench.models", "tdm_edge.bench.tune",
)

# functions of device modules where a command crosses to the workstation side (each calls require_workstation
# first, or is reached only from one that did): "module:qualified.name", "module:*" for every function
WORKSTATION_ENTRIES: Tuple[str, ...] = (
    "tdm_edge.cli:_cmd_flops", "tdm_edge.cli:_cmd_export", "tdm_edge.cli:_cmd_models",
    "tdm_edge.checkpoint:_load", "tdm_edge.checkpoint:read_state_dict", "tdm_edge.checkpoint:load_checkpoint",
    "tdm_edge.video.backends:_load_torch", "tdm_edge.video.backends:_default_checkpoint",
    "tdm_edge.bench.backends:RunnerSpec._torch_runner", "tdm_edge.bench.backends:prepare",
    "tdm_edge.bench.backends:_export", "tdm_edge.bench.backends:_quantize_cpu",
    "tdm_edge.cli:model_label",  # flops/export name a trained checkpoint's model
    "tdm_edge.bench.run:environment", "tdm_edge.bench.run:run_bench", "tdm_edge.bench.run:model_name",
    "tdm_edge.bench.machine:gpu_name",  # torch only for bench of models on torch-cuda
    "tdm_edge.bench.commands:_cmd_tune", "tdm_edge.bench.commands:_bench_models",
    "tdm_edge.quantize.commands:*", "tdm_edge.train.commands:*",
)

# commands with no device path at all (build, run, bench, check, doctor have one; models lists from a catalog)
WORKSTATION_COMMANDS: Tuple[str, ...] = ("export", "flops", "calibrate", "compare", "eval", "make-dataset", "train",
                                         "tune")

EXTRA_HINT = "pip install 'tdm-edge[export]'"
MIN_WORKSTATION_PYTHON = (3, 10)


def side_of(module: str) -> Optional[str]:
    """``"device"``, ``"workstation"`` or ``None`` (on no list) for a module name such as ``tdm_edge.video.loop``."""
    if module in DEVICE_MODULES:
        return "device"
    if module in WORKSTATION_MODULES:
        return "workstation"
    best, side = -1, None
    for entries, name in ((DEVICE_MODULES, "device"), (WORKSTATION_MODULES, "workstation")):
        for entry in entries:
            package = entry[:-2] if entry.endswith(".*") else None
            if package and (module == package or module.startswith(package + ".")) and len(package) > best:
                best, side = len(package), name
    return side


def missing_workstation_packages() -> Tuple[str, ...]:
    """The workstation packages (torch, timm) that cannot be imported here, without importing them."""
    missing = []
    for name in ("torch", "timm"):
        try:
            found = util.find_spec(name) is not None
        except (ImportError, ValueError):  # a blocked or broken package
            found = False
        if not found:
            missing.append(name)
    return tuple(missing)


def require_workstation(what: str) -> None:
    """:class:`~tdm_edge.errors.UsageError` (one line, exit 2) unless this Python can run the workstation side.

    ``what`` names the command or option that needs it (``"export"``, ``"run with a timm model"``).
    """
    from .errors import UsageError

    if sys.version_info < MIN_WORKSTATION_PYTHON:
        raise UsageError(_old_python(what))
    missing = missing_workstation_packages()
    if missing:
        raise UsageError(f"{what} needs {' and '.join(missing)}, which this install does not have: {EXTRA_HINT} "
                         "(on a Jetson: NVIDIA's torch wheel first, see docs/jetson.md)")


def _old_python(what: str) -> str:
    return (f"{what} is on the workstation side, which needs Python >= 3.10 (this is {sys.version_info[0]}."
            f"{sys.version_info[1]}); on this device use build, run and bench with .onnx or .engine files")


def check_command_side(command: str) -> None:
    """One line (:class:`~tdm_edge.errors.UsageError`) for a workstation command on a Python older than 3.10."""
    from .errors import UsageError

    if command in WORKSTATION_COMMANDS and sys.version_info < MIN_WORKSTATION_PYTHON:
        raise UsageError(_old_python(command))


def workstation_hint(err: ImportError, command: str) -> Optional[str]:
    """The one line for a command that failed importing a workstation package (``None``: some other import)."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    if name not in FORBIDDEN:
        return None
    if sys.version_info < MIN_WORKSTATION_PYTHON:
        return _old_python(command)
    return (f"{command} needs {name}, which this install does not have: {EXTRA_HINT} (on a Jetson: NVIDIA's torch "
            "wheel first, see docs/jetson.md)")
