"""Build plugins/tdm_merge/batMergeCpu.cpp with the host C++ compiler and call it through ctypes (tests only)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

KERNEL_DIR = Path(__file__).resolve().parents[2] / "plugins" / "tdm_merge"


class BatSizes(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("n", "c", "keep", "pairs", "clusters", "knn")]


def compiler() -> str | None:
    """The host C++ compiler ($CXX, g++ or clang++), or None."""
    for name in (os.environ.get("CXX"), "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def build(out_dir: Path) -> Path:
    """Compile the CPU build of the kernel into ``out_dir`` and return the shared library's path."""
    lib = out_dir / "libtdm_bat_cpu.so"
    # -ffp-contract=off: no a * b + c fused into an FMA (GCC does on FMA hardware, e.g. aarch64), as nvcc --fmad=false
    cmd = [compiler(), "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
           str(KERNEL_DIR / "batMergeCpu.cpp"), "-o", str(lib)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib


GUARD_BYTES = 4096  # after the workspace: must come back untouched
OUT_POISON = 1.2345e30  # every output value must be overwritten


class CpuKernel:
    """ctypes view of the C ABI in batMergeCpu.cpp."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        self.lib.tdm_bat_merge_f32.restype = ctypes.c_int32
        self.lib.tdm_bat_output_tokens.restype = ctypes.c_int32
        self.lib.tdm_bat_selection_ints.restype = ctypes.c_int32
        self.lib.tdm_bat_size_error.restype = ctypes.c_char_p
        self.lib.tdm_bat_workspace_bytes.restype = ctypes.c_size_t

    def __call__(self, x: torch.Tensor, importance: torch.Tensor, keep: int, pairs: int, clusters: int,
                 knn: int = 5, poison: int = 0xFF) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x [B, N, C]``, ``importance [B, N-1]`` (fp32) -> (tokens ``[B, N', C]``, selections per image).

        The workspace is filled with the byte ``poison`` first (0xFF: every float NaN, every int -1; 0x7F: floats
        3.4e38, ints 2.1e9), as a GPU's is never zeroed, and followed by guard bytes that must stay untouched; the
        output starts as OUT_POISON everywhere.
        """
        batch, n, c = x.shape
        sizes = BatSizes(n, c, keep, pairs, clusters, knn)
        n_out = self.lib.tdm_bat_output_tokens(ctypes.byref(sizes))
        if n_out < 0:
            raise ValueError(self.lib.tdm_bat_size_error(ctypes.byref(sizes)).decode())
        xs = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
        ws = np.ascontiguousarray(importance.detach().numpy(), dtype=np.float32)
        out = np.full((batch, n_out, c), OUT_POISON, dtype=np.float32)
        ints = self.lib.tdm_bat_selection_ints(ctypes.byref(sizes))
        sel = np.zeros((batch, ints), dtype=np.int32)
        scratch_bytes = self.lib.tdm_bat_workspace_bytes(ctypes.byref(sizes)) * batch
        scratch = np.full(scratch_bytes + GUARD_BYTES, poison, dtype=np.uint8)
        code = self.lib.tdm_bat_merge_f32(ctypes.byref(sizes), batch, xs.ctypes.data_as(ctypes.c_void_p),
                                          ws.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                                          sel.ctypes.data_as(ctypes.c_void_p), scratch.ctypes.data_as(ctypes.c_void_p))
        assert code == 0
        assert (scratch[scratch_bytes:] == poison).all(), "the kernel wrote past its workspace"
        assert not (out == OUT_POISON).any(), "an output value was never written"
        ka = (keep + 1) // 2
        lens = {"order": n - 1, "src": pairs, "dst": pairs, "unm": ka - pairs, "centres": clusters,
                "labels": n - 1 - keep}
        parts, start = {}, 0
        for name, length in lens.items():
            parts[name] = torch.from_numpy(sel[:, start:start + length].astype(np.int64))
            start += length
        return torch.from_numpy(out), parts
