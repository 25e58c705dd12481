"""The real CUDA kernel (plugins/tdm_merge/batMergeKernel.cu, unmodified) run on the CPU through plugins/cudacpu,
with its own launch configuration, against the host path (batMergeCpu.cpp) on the inputs of test_kernel_cpu.py.

Both are built by g++ with the same flags, -ffp-contract=off among them: the kernel and the host path call the same
phase functions and sum every dot product in the same fixed order, so the outputs must agree bit for bit (no
tolerance). On a GPU that is not the claim: nvcc contracts multiply-adds into FMAs and the GPU's expf is not
glibc's (docs/kernel.md).
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tdm_edge.reduce.schedule import Stage, build_schedule

from .cpu_kernel import BatSizes, compiler

ROOT = Path(__file__).resolve().parents[2]
KERNEL_DIR = ROOT / "plugins" / "tdm_merge"
CUDACPU = ROOT / "plugins" / "cudacpu"
HERE = Path(__file__).resolve().parent
FLAGS = ["-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"]
GUARD = 4096  # bytes after the workspace and floats after the output: must stay untouched
OUT_POISON = np.float32(1.2345e30)

sys.path.insert(0, str(CUDACPU))
import translate  # noqa: E402  (plugins/cudacpu/translate.py: not a package)


def cuda_on_cpu_command(sources: list[Path], include: Path, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """g++ for CUDA sources: force-include cudacpu's cuda_runtime.h, as nvcc does with its own."""
    return [compiler(), *FLAGS, *extra, "-fPIC", "-shared", "-x", "c++", "-include", str(CUDACPU / "cuda_runtime.h"),
            "-I", str(CUDACPU), "-I", str(include), *map(str, sources), "-o", str(out)]


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    if compiler() is None:
        pytest.skip("no host C++ compiler (g++ or clang++) to build the kernel for the CPU")
    tmp = tmp_path_factory.mktemp("cuda_on_cpu")
    translated = translate.translate_tree(KERNEL_DIR, tmp / "src")
    assert tmp / "src" / "batMergeKernel.cu" in translated
    cuda = tmp / "libtdm_merge_cudacpu.so"
    host = tmp / "libtdm_merge_host.so"
    for cmd in (cuda_on_cpu_command([tmp / "src" / "batMergeKernel.cu", HERE / "cudacpu_driver.cpp"], tmp / "src",
                                    cuda),
                [compiler(), *FLAGS, "-fPIC", "-shared", str(KERNEL_DIR / "batMergeCpu.cpp"), "-o", str(host)]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-4000:]
    cuda_lib, host_lib = ctypes.CDLL(str(cuda)), ctypes.CDLL(str(host))
    cuda_lib.tdm_cudacpu_workspace_size.restype = ctypes.c_size_t
    cuda_lib.tdm_cudacpu_forward.restype = ctypes.c_int32
    cuda_lib.tdm_cudacpu_message.restype = ctypes.c_char_p
    cuda_lib.tdm_cudacpu_schedule.argtypes = [ctypes.c_int32, ctypes.c_uint64]
    host_lib.tdm_bat_output_tokens.restype = ctypes.c_int32
    host_lib.tdm_bat_workspace_bytes.restype = ctypes.c_size_t
    yield cuda_lib, host_lib
    cuda_lib.tdm_cudacpu_schedule(0, 0)


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


def run_cuda(lib, x: np.ndarray, w: np.ndarray, stage: Stage, n_out: int) -> np.ndarray:
    """The kernel through its launcher, fp32 or fp16 as x's dtype; workspace poisoned (a GPU's is never zeroed)."""
    batch, n, c = x.shape
    sizes = BatSizes(n, c, stage.keep, stage.pairs, stage.clusters, stage.knn)
    ws_bytes = lib.tdm_cudacpu_workspace_size(ctypes.byref(sizes), batch)
    ws = np.full(ws_bytes + GUARD, 0xFF, dtype=np.uint8)
    poison = OUT_POISON if x.dtype == np.float32 else np.float16(-60000.0)
    out = np.full(batch * n_out * c + GUARD, poison, dtype=x.dtype)
    code = lib.tdm_cudacpu_forward(ctypes.byref(sizes), batch, 1 if x.dtype == np.float16 else 0, ptr(x), ptr(w),
                                   ptr(out), ptr(ws))
    assert code == 0, f"cudaError {code}: {lib.tdm_cudacpu_message().decode()}"
    assert (ws[ws_bytes:] == 0xFF).all(), "the kernel wrote past its workspace"
    assert (out[batch * n_out * c:] == poison).all(), "the kernel wrote past its output"
    return out[:batch * n_out * c].reshape(batch, n_out, c)


def run_host(lib, x: np.ndarray, w: np.ndarray, stage: Stage) -> np.ndarray:
    batch, n, c = x.shape
    sizes = BatSizes(n, c, stage.keep, stage.pairs, stage.clusters, stage.knn)
    n_out = lib.tdm_bat_output_tokens(ctypes.byref(sizes))
    assert n_out == stage.n_out
    out = np.full((batch, n_out, c), OUT_POISON, dtype=np.float32)
    ws = np.full(lib.tdm_bat_workspace_bytes(ctypes.byref(sizes)) * batch, 0xFF, dtype=np.uint8)
    assert lib.tdm_bat_merge_f32(ctypes.byref(sizes), batch, ptr(x), ptr(w), ptr(out), None, ptr(ws)) == 0
    return out


def bat_stage(n: int, keep: int, pairs: int, clusters: int, knn: int = 5) -> Stage:
    return Stage(block=0, method="bat", n_in=n, n_out=1 + keep - pairs + clusters, keep=keep, pairs=pairs,
                 clusters=clusters, knn=knn)


def deit_small_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, Stage]]:
    """test_kernel_cpu.py's DeiT-S inputs: 197 -> 139 -> 98 -> 69 tokens, C = 384, batch 2."""
    schedule = build_schedule(197, 12, "bat", 0.7, None, 0.25, 5, None)
    assert schedule.stage_tokens == [197, 139, 98, 69]
    g = torch.Generator().manual_seed(2)
    cases = []
    for stage in schedule.stages:
        x = torch.randn(2, stage.n_in, 384, generator=g)
        w = (torch.randn(2, stage.n_in - 1, generator=g) * 2).softmax(-1)
        cases.append((f"deit_s_{stage.n_in}", x, w, stage))
    return cases


def small_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, Stage]]:
    """test_kernel_cpu.py's other inputs: random, exact ties, NaN/Inf/equal importances, zero, duplicate and
    non-finite tokens."""
    cases = []
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 65, 32, generator=g), torch.rand(3, 64, generator=g).softmax(-1)
    cases += [("random", x, w, bat_stage(65, 45, 5, 5)), ("random_m_ne_r", x, w, bat_stage(65, 20, 7, 11, knn=3))]
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-2, 3, (2, 41, 8), generator=g).float()
    x[:, 20:30] = x[:, 5:15]
    w = torch.randint(1, 5, (2, 40), generator=g).float() / 8
    cases.append(("ties", x, w, bat_stage(41, 24, 6, 6)))
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(2, 33, 16, generator=g), torch.rand(2, 32, generator=g)
    w[0, [3, 7, 20]] = float("nan")
    w[1] = float("nan")
    cases.append(("nan_importance", x, w, bat_stage(33, 20, 5, 4)))
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(3, 33, 16, generator=g), torch.rand(3, 32, generator=g)
    w[0, [1, 9]], w[0, [4, 30]] = float("inf"), float("-inf")
    w[1] = 0.25
    w[2, ::2] = 0.0
    w[2, 4] = -0.0
    cases.append(("inf_equal_importance", x, w, bat_stage(33, 16, 6, 5)))
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 41, 16, generator=g)
    w = torch.linspace(1.0, 0.1, 40).expand(2, 40).clone()
    x[0, 1 + 2 * torch.arange(0, 6)] = 0.0
    x[0, 1 + 2 * 7 + 1] = 0.0
    x[1, 1 + torch.arange(24, 40)] = 0.0
    x[1, 1 + torch.arange(2, 10)] = x[1, 1 + torch.arange(10, 18)]
    cases.append(("zero_duplicate_tokens", x, w, bat_stage(41, 24, 7, 5)))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 33, 8, generator=g)
    w = torch.linspace(1.0, 0.1, 32).expand(2, 32).clone()
    x[0, 1 + 3, 2] = float("inf")
    x[0, 1 + 25, 0] = float("nan")
    x[1, 1 + 22] = float("inf")
    cases.append(("non_finite_tokens", x, w, bat_stage(33, 16, 4, 5)))
    return cases


def as_f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy(), dtype=np.float32)


def assert_same_bits(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert got.shape == want.shape, name
    differ = got.view(np.uint32 if got.dtype == np.float32 else np.uint16) != want.view(
        np.uint32 if want.dtype == np.float32 else np.uint16)
    assert not differ.any(), (f"{name}: {int(differ.sum())} of {differ.size} values differ, first at "
                              f"{np.argwhere(differ)[0].tolist()}")


@pytest.mark.parametrize("case", [c[0] for c in small_cases()])
def test_kernel_equals_host_small(libs, case):
    cuda, host = libs
    _, x, w, stage = next(c for c in small_cases() if c[0] == case)
    x, w = as_f32(x), as_f32(w)
    want = run_host(host, x, w, stage)
    assert_same_bits(run_cuda(cuda, x, w, stage, stage.n_out), want, case)


def test_kernel_equals_host_deit_small(libs):
    """DeiT-S's three stages, batch 2, the real grid of every kernel of the chain: bit for bit."""
    cuda, host = libs
    for name, x, w, stage in deit_small_cases():
        x, w = as_f32(x), as_f32(w)
        want = run_host(host, x, w, stage)
        assert np.isfinite(want).all() and want.shape == (2, stage.n_out, 384)
        assert_same_bits(run_cuda(cuda, x, w, stage, stage.n_out), want, name)


def test_kernel_fp16_equals_host_on_rounded_inputs(libs):
    """__half tokens: the kernel converts to fp32, selects and combines in fp32, rounds once on output, so its
    output is the host's fp32 output on the same (half-valued) inputs, rounded to half (numpy's rounding)."""
    cuda, host = libs
    name, x, w, stage = deit_small_cases()[0]
    xh, wh = as_f32(x).astype(np.float16), as_f32(w * 64).astype(np.float16)  # importances ~1/196: keep them normal
    want = run_host(host, xh.astype(np.float32), wh.astype(np.float32), stage).astype(np.float16)
    assert_same_bits(run_cuda(cuda, xh, wh, stage, stage.n_out), want, name + "_fp16")


@pytest.mark.parametrize("mode, seed", [(1, 0), (2, 1), (2, 2)])
def test_thread_order_does_not_change_result(libs, mode, seed):
    """Threads of a block run in reverse or random order between barriers: a missing __syncthreads (a thread
    reading what another has not written yet) would change the output; it must not."""
    cuda, host = libs
    cuda.tdm_cudacpu_schedule(mode, seed)
    try:
        for name, x, w, stage in [deit_small_cases()[0], next(c for c in small_cases() if c[0] == "ties")]:
            x, w = as_f32(x), as_f32(w)
            assert_same_bits(run_cuda(cuda, x, w, stage, stage.n_out), run_host(host, x, w, stage), name)
    finally:
        cuda.tdm_cudacpu_schedule(0, 0)


@pytest.mark.slow
def test_ucontext_fallback_equals_host(libs, tmp_path):
    """The portable context switch (POSIX swapcontext: aarch64, Jetson) instead of x86-64's assembly: the same
    bits on DeiT-S's first stage."""
    _, host = libs
    translate.translate_tree(KERNEL_DIR, tmp_path / "src")
    lib_path = tmp_path / "libucontext.so"
    cmd = cuda_on_cpu_command([tmp_path / "src" / "batMergeKernel.cu", HERE / "cudacpu_driver.cpp"], tmp_path / "src",
                              lib_path, extra=("-DCUDACPU_UCONTEXT",))
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    lib = ctypes.CDLL(str(lib_path))
    lib.tdm_cudacpu_workspace_size.restype = ctypes.c_size_t
    lib.tdm_cudacpu_message.restype = ctypes.c_char_p
    name, x, w, stage = deit_small_cases()[0]
    x, w = as_f32(x), as_f32(w)
    assert_same_bits(run_cuda(lib, x, w, stage, stage.n_out), run_host(host, x, w, stage), name)


@pytest.mark.slow
def test_kernel_under_sanitizers(tmp_path):
    """The .cu through cudacpu built with -fsanitize=address,undefined (cudacpu tells AddressSanitizer of every fiber
    switch): exact-size buffers, poisoned workspace, degenerate inputs, the DeiT-S stages and two small ones, fp32
    and fp16. Any out-of-bounds access in any kernel of the chain, or undefined behaviour, fails the run."""
    if compiler() is None:
        pytest.skip("no host C++ compiler")
    translate.translate_tree(KERNEL_DIR, tmp_path / "src")
    exe = tmp_path / "sanitized"
    cmd = cuda_on_cpu_command([tmp_path / "src" / "batMergeKernel.cu"], tmp_path / "src", exe,
                              extra=("-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                                     "-fno-omit-frame-pointer"))
    cmd.remove("-shared")
    cmd[cmd.index("-o"):cmd.index("-o")] = ["-x", "none", str(HERE / "cudacpu_sanitize_main.cpp")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 and "sanitize" in done.stderr and "cannot find" in done.stderr:
        pytest.skip("the compiler has no AddressSanitizer/UBSan runtime")
    assert done.returncode == 0, done.stderr[-4000:]
    stages = [stage for *_, stage in deit_small_cases()] + [bat_stage(33, 16, 4, 5), bat_stage(65, 20, 7, 11, knn=3)]
    args = [str(v) for st in stages for v in (st.n_in, 384 if st.n_in in (197, 139, 98) else 16, st.keep, st.pairs,
                                              st.clusters, st.knn)]
    run = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert run.stdout.strip() == f"runs {6 * len(stages)} failures 0"
    assert "runtime error" not in run.stderr and "AddressSanitizer" not in run.stderr


def test_invalid_sizes_return_error_without_launch(libs):
    cuda, _ = libs
    x = np.zeros((1, 9, 4), np.float32)
    w = np.zeros((1, 8), np.float32)
    sizes = BatSizes(9, 4, 1, 0, 1, 5)  # keep = 1: refused by validateSizes
    out = np.full(64, OUT_POISON, np.float32)
    ws = np.zeros(1024, np.uint8)
    assert cuda.tdm_cudacpu_forward(ctypes.byref(sizes), 1, 0, ptr(x), ptr(w), ptr(out), ptr(ws)) == 1  # InvalidValue
    assert (out == OUT_POISON).all()


# ---- the runtime itself: semantics a future kernel may rely on --------------------------------------------------


def test_runtime_semantics(tmp_path):
    """tests/plugins/cudacpu_semantics.cu: 3-D indices, static and dynamic shared memory (with the 48 KB opt-in),
    shuffles (xor, down, up, indexed, widths), votes, atomics, __syncthreads_count, launch errors, misuse found."""
    if compiler() is None:
        pytest.skip("no host C++ compiler")
    src = tmp_path / "semantics.cu"
    src.write_text(translate.translate((HERE / "cudacpu_semantics.cu").read_text(), str(HERE / "cudacpu_semantics.cu")))
    exe = tmp_path / "semantics"
    cmd = cuda_on_cpu_command([src], tmp_path, exe)
    cmd.remove("-shared")
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    got = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    # 3-D grid (2,3,1) x block (4,2,3): every thread writes its global linear id once
    assert got["index3d"] == "ok 144"
    # block of 200 threads: sum of tid through static shared memory and a tree of __syncthreads
    assert got["shared_sum"] == str(sum(range(200)))
    # 64 KB of dynamic shared memory: refused at 48 KB by default, accepted after cudaFuncSetAttribute
    assert got["dynamic_shared"] == "1 ok " + str(sum(range(16384)) % 2**32)
    lanes = np.arange(64)
    assert got["shfl_xor_sum"] == " ".join(["496"] * 2)  # butterfly sum of lanes 0..31, each warp
    assert got["shfl_down"] == " ".join(str(v) for v in np.where(lanes % 32 + 3 < 32, lanes + 3, lanes)[:40])
    assert got["shfl_up_w8"] == " ".join(str(v) for v in np.where(lanes % 8 >= 2, lanes - 2, lanes)[:40])
    assert got["shfl_idx_w16"] == " ".join(str(v) for v in (lanes // 16 * 16 + 5)[:40])
    assert got["ballot"] == f"{0x55555555} {0x55555555} 1 0"  # even lanes; any; all
    assert got["atomics"] == f"{64 * 10} {64 * 10}.0 0 31 1"  # 2 blocks of 32: sums, min, max, one CAS winner
    assert got["syncthreads_count"] == "100 0 1"  # count of even tid in 200, and(tid<0), or(tid==7)
    assert got["bad_config"] == "9 0"  # 2048 threads: InvalidConfiguration, cleared by cudaGetLastError
    assert got["deadlock"].startswith("719 ") and "deadlock" in got["deadlock"]
    assert got["mask_misuse"].startswith("719 ") and "not in its mask" in got["mask_misuse"]
    assert got["warp_misc"] == "496 69 100 16 6 2"  # reduce add/min/max, alignof(float4), float4 sum, atomicInc wrap
    assert got["early_exit"].startswith("719 ") and "exited" in got["early_exit"]
    assert got["half"] == "15360 31743 31744 1 0 1024"


# ---- the source step --------------------------------------------------------------------------------------------


def test_translate_rewrites_launches_and_extern_shared_only_in_code():
    src = ("// k<<<1, 2>>>() in a comment\n"
           "ns::k<T, (4 > 2)>  <<< dim3(a, b),\n 32, n * sizeof(float), s >>>(x, y);\n"
           "extern __shared__ __align__(16) unsigned char buf[];\n"
           "::k2<<<1, 1>>>();\n"
           "char const* q = \"<<<\";\n")
    assert translate.translate(src) == (
        "// k<<<1, 2>>>() in a comment\n"
        "::cudacpu::launch(ns::k<T, (4 > 2)>,  dim3(a, b),\n 32, n * sizeof(float), s )(x, y);\n"
        "static unsigned char* const buf = reinterpret_cast<unsigned char*>(::cudacpu::dynamicShared());\n"
        "::cudacpu::launch(::k2, 1, 1)();\n"
        "char const* q = \"<<<\";\n")
    with pytest.raises(translate.TranslateError):
        translate.translate("k<<<1, 2>>(x);")


def test_translate_cli_bad_input_exits_2(tmp_path):
    done = subprocess.run([sys.executable, str(CUDACPU / "translate.py"), str(tmp_path / "missing"), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
