"""nvcc builds the fused merge kernel for Orin (sm_87), Hopper (sm_90) and Thor (sm_110) without warnings, and the
kernel sources use only CUDA runtime names that CUDA 11.4 (JetPack 5) already has."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .cpu_kernel import KERNEL_DIR

ARCHS = ("87", "90", "110")
KERNEL_SOURCES = ("batMergeTypes.h", "batMerge.h", "batMergeKernel.h", "batMergeKernel.cu")
# Every CUDA runtime/intrinsic name the kernel sources may use, each documented in the CUDA 11.4 toolkit
# (CUDA Runtime API 11.4, CUDA Math API 11.4 half-precision conversions, CUDA C++ Programming Guide 11.4:
# __shfl_xor_sync since CUDA 9).
CUDA_11_4_NAMES = {"cudaError_t", "cudaSuccess", "cudaErrorInvalidValue", "cudaStream_t", "cudaGetLastError",
                   "__half", "__half2float", "__float2half", "__syncthreads", "__shfl_xor_sync",
                   "__launch_bounds__", "__global__", "__host__", "__device__", "__shared__", "__align__", "__CUDACC__"}


def test_kernel_names_exist_in_cuda_11_4():
    used = set()
    for name in KERNEL_SOURCES:
        text = (KERNEL_DIR / name).read_text()
        used |= set(re.findall(r"\b(cuda[A-Z]\w*|__[a-z]\w*__|__[a-z]\w*|__CUDACC__)\b", text))
    assert "cudaGetLastError" in used and "__syncthreads" in used  # the scan sees the sources' CUDA names
    assert used <= CUDA_11_4_NAMES, f"names not vetted against CUDA 11.4: {sorted(used - CUDA_11_4_NAMES)}"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed (compile-only check)")
def test_nvcc_builds_for_orin_hopper_thor(tmp_path):
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    cmd = ["nvcc", "-std=c++17", "--fmad=false", "-c", str(KERNEL_DIR / "batMergeKernel.cu"), "-o", str(tmp_path / "k.o"),
           *gencode, "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra,-Werror"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip() == ""  # not one warning
    if shutil.which("cuobjdump"):  # the object holds one cubin per architecture
        listing = subprocess.run(["cuobjdump", "--list-elf", str(tmp_path / "k.o")], capture_output=True, text=True)
        for arch in ARCHS:
            assert f"sm_{arch}" in listing.stdout
