"""The command line's validation: early (before torch), specific (one line), never silent; --version; models."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tdm_edge import __version__, cli

ROOT = Path(__file__).resolve().parents[1]

# One fresh interpreter runs every case: per case the exit code, stderr, the heavy modules imported by then and
# the seconds it took; last, the seconds from interpreter start to the end of the first case.
PROBE = """
import contextlib, io, json, sys, time
start = time.perf_counter()
from tdm_edge.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    t, err = time.perf_counter(), io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as stop:  # argparse's own usage errors, --version
            rc = stop.code
    heavy = [m for m in ('torch', 'timm', 'torchvision', 'onnx', 'onnxruntime', 'cv2') if m in sys.modules]
    results.append([rc, err.getvalue(), heavy, time.perf_counter() - t])
    if len(results) == 1:
        first = time.perf_counter() - start
print(json.dumps([results, first]))
"""


def _fresh_run(argvs: list[list[str]], cwd: Path) -> tuple[list, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results, first = json.loads(done.stdout.strip().splitlines()[-1])
    return results, min(first, time.perf_counter() - start)


def _bad_files(tmp: Path) -> None:
    (tmp / "dir.onnx").mkdir()
    (tmp / "side.json").mkdir()  # the sidecar of side.onnx
    os.mkfifo(tmp / "fifo.onnx")
    (tmp / "null.onnx").symlink_to(os.devnull)
    (tmp / "file").write_text("not a directory")
    (tmp / "weights").mkdir()
    (tmp / "random.pth").write_bytes(bytes(range(256)) * 4)
    (tmp / "text.safetensors").write_text("this is a text file, not a tensor file\n")
    (tmp / "empty.pt").write_bytes(b"")


EARLY_CASES = [
    (["--batch", "0"], "--batch must be in 1..1024, got 0"),
    (["--batch", "-3"], "--batch must be in 1..1024"),
    (["--batch", "two"], "not an integer: 'two'"),
    (["--img-size", "-5"], "image size must be in 1..1024, got -5"),
    (["--img-size", "100000"], "image size must be in 1..1024, got 100000"),
    (["--img-size", "100"], "image size 100 is not a multiple of deit_small_patch16_224's patch size 16 (try 96 or 112)"),
    (["--img-size", "17"], "not a multiple of deit_small_patch16_224's patch size 16 (try 16 or 32)"),
    (["--num-classes", "0"], "--num-classes must be in 1..1000000, got 0"),
    (["--opset", "12"], "--opset must be in 14..20, got 12"),
    (["--keep-rate", "nan"], "keep rate must be in (0, 1], got nan"),
    (["--cluster-ratio", "1.5"], "cluster ratio must be in (0, 1], got 1.5"),
    (["--knn", "0"], "--knn must be in 1..2147483647, got 0"),
    (["--prune-blocks", ""], "--prune-blocks: no block given"),
    (["--method", "evit", "--cluster-ratio", "0.5"], "--cluster-ratio does not apply to method evit (it uses --keep-rate, --prune-blocks)"),
    (["--method", "evit", "--knn", "3"], "--knn does not apply to method evit"),
    (["--method", "bat", "--tome-r", "8"], "--tome-r does not apply to method bat"),
    (["--method", "tome", "--prune-blocks", "3"], "--prune-blocks does not apply to method tome (it uses --keep-rate, --tome-r)"),
    (["--method", "tome", "--tome-r", "8", "--keep-rate", "0.7"], "tome takes --tome-r or --keep-rate"),
    (["--method", "none", "--keep-rate", "0.7"], "--keep-rate does not apply to method none"),
    (["--method", "random"], "method 'random' draws new tokens on every run"),
    (["-o", "m.onnx.tmp"], "output m.onnx.tmp must end in .onnx"),
    (["-o", "dir.onnx"], "output dir.onnx is a directory"),
    (["-o", "side.onnx"], "sidecar side.json is a directory"),
    (["-o", "fifo.onnx"], "output fifo.onnx exists and is not a regular file"),
    (["-o", "null.onnx"], "output null.onnx exists and is not a regular file"),
    (["-o", "missing/m.onnx"], "cannot write output missing/m.onnx: missing does not exist"),
    (["-o", "file/m.onnx"], "cannot write output file/m.onnx: file is not a directory"),
    (["--checkpoint", "weights"], "checkpoint weights is a directory"),
    (["--checkpoint", "nope.pth"], "checkpoint not found: nope.pth"),
    (["--checkpoint", "random.pth"], "checkpoint random.pth is not a PyTorch (.pth/.pt) or safetensors file (it starts with unrecognised binary data)"),
    (["--checkpoint", "text.safetensors"], "checkpoint text.safetensors is named .safetensors but is not one"),
    (["--checkpoint", "empty.pt"], "checkpoint empty.pt is empty"),
]


def test_argument_errors_come_before_torch_in_one_line(tmp_path):
    """Every error that needs no model: exit 2, one line naming the problem, no heavy module (torch, timm, onnx,
    ONNX Runtime, OpenCV) imported: what makes the answer immediate. The seconds themselves are a benchmark
    (benchmarks/cli_startup.py, results/cli_startup.md), not a unit-test assert on a shared machine."""
    _bad_files(tmp_path)
    before = sorted(os.listdir(tmp_path))
    argvs = [["export", "-o", "m.onnx", *extra] for extra, _ in EARLY_CASES]
    results, _ = _fresh_run(argvs, tmp_path)
    for argv, (_, message), (rc, err, heavy, _) in zip(argvs, EARLY_CASES, results):
        assert rc == 2, (argv, err)
        assert err.count("\n") == 1 and err.startswith("tdm-edge export: error: ") and message in err, (argv, err)
        assert "Traceback" not in err and heavy == [], (argv, heavy)
    assert sorted(os.listdir(tmp_path)) == before  # nothing created, nothing replaced


def test_version_is_light(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"tdm-edge {__version__}"
    (rc, err, heavy, _), = _fresh_run([["--version"]], tmp_path)[0]
    assert rc == 0 and err == "" and heavy == []


def _error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize("argv, message", [
    (["--knn", "1000"], "--knn 1000 out of range: block 9 clusters only 29 inattentive tokens, so k must be in 1..29"),
    (["--method", "tome", "--tome-r", "1000"], "ToMe r must be in 0..98 for 197 tokens"),
    (["--keep-rate", "0.01"], "bat at keep rate 0.01: block 3 (197 tokens) keeps 2 attentive token(s), too few to "
                              "merge the 49 pair(s) that 49 cluster(s) need; the lowest keep rate that works for "
                              "bat here is 0.33"),
    (["--method", "evit", "--keep-rate", "0.01"], "the lowest keep rate that works for evit here is 0.17"),
    (["--img-size", "16"], "bat at keep rate 0.7 removes no token from 1 patch token(s)"),
    (["--model", "flexivit_small", "--img-size", "100"], "image size 100 is not a multiple of flexivit_small's "
                                                         "patch size 16 (try 96 or 112)"),
    (["--model", "deit_tiny_distiled_patch16_224"], "unknown model 'deit_tiny_distiled_patch16_224' (did you mean "
                                                    "deit_tiny_patch16_224"),
    (["--model", "deit_tiny_distilled_patch16_224"], "cannot be token-reduced: a distillation token"),
    (["--model", "vit_base_patch16_reg4_gap_256"], "cannot be token-reduced: no class token, 4 register tokens"),
    (["--model", "resnet50"], "resnet50 cannot be token-reduced: not a timm VisionTransformer"),
])
def test_model_dependent_errors_come_before_the_model_is_built(capsys, monkeypatch, argv, message):
    """Errors that need the model's architecture (read from timm's constructor arguments, nothing built)."""
    from tdm_edge.reduce import models

    def never(*args, **kwargs):
        raise RuntimeError("the model was built before its settings were checked")

    monkeypatch.setattr(models, "_base_model", never)
    err = _error(capsys, ["flops", "--model", "deit_tiny_patch16_224", *argv])
    assert message in err
    if "did you mean" in err:
        assert "distilled" not in err.split("did you mean")[1]  # only patchable names are suggested


def test_models_lists_only_patchable_ones(capsys):
    from tdm_edge.reduce.models import PREFIX

    assert cli.main(["models", "deit*"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  deit")}
    assert rows["deit_small_patch16_224"] == ["16", "224", "12", "384", "6"]
    assert rows["deit_base_patch16_384"] == ["16", "384", "12", "768", "12"]
    assert not any("distilled" in name for name in rows)
    assert "4 other timm ViTs cannot be patched" in out and f"{PREFIX}<name>" in out
    assert all(f"  {m} " in out for m in ("bat", "evit", "tome", "random", "none"))
    assert cli.main(["models", "vit_base_patch16_reg4*", "--all"]) == 0
    out = capsys.readouterr().out
    assert "can patch matching 'vit_base_patch16_reg4*': 0" in out
    assert "vit_base_patch16_reg4_gap_256" in out and "no class token, 4 register tokens" in out


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "vit_small_patch14_dinov2", "flexivit_small",
                                  "deit_tiny_distilled_patch16_224", "vit_base_patch16_reg4_gap_256",
                                  "vit_small_patch16_18x2_224"])
def test_architecture_probe_agrees_with_patching_the_built_model(name):
    """What `models` says without building equals what patch_vit finds on the real (meta-device) model."""
    import timm
    import torch

    from tdm_edge.reduce.models import architecture
    from tdm_edge.reduce.patch import PatchError, count_tokens, patch_vit

    arch = architecture(name)
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    try:
        patch_vit(model, method="none")
        patched = True
    except PatchError:
        patched = False
    assert arch.patchable == patched, arch.problems
    if patched:
        assert (arch.patch_size, arch.img_size, arch.depth) == (model.patch_embed.patch_size[0],
                                                              model.patch_embed.img_size[0], len(model.blocks))
        assert arch.num_tokens == count_tokens(model)


def test_a_pickled_object_checkpoint_is_one_line_without_pytorchs_advice(tmp_path, capsys):
    import torch

    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module, not a state_dict
    err = _error(capsys, ["flops", "--model", "deit_tiny_patch16_224", "--checkpoint", str(tmp_path / "module.pth")])
    assert "holds pickled Python objects, not only tensors (it needs torch.nn.modules.linear.Linear)" in err
    assert "weights_only" not in err


def test_python_callers_may_loop_methods_over_one_keep_rate():
    """create_model refuses method-specific options the method ignores, but not the shared keep rate."""
    from tdm_edge.errors import UsageError
    from tdm_edge.reduce.models import create_model

    unpruned = create_model("deit_tiny_patch16_224", method="none", keep_rate=0.7, img_size=64)
    assert unpruned.tdm_schedule.stages == () and unpruned.tdm_schedule.keep_rate == 1.0
    with pytest.raises(UsageError, match="--cluster-ratio does not apply to method evit"):
        create_model("deit_tiny_patch16_224", method="evit", cluster_ratio=0.5, img_size=64)


def test_a_failing_cuda_call_is_one_line_and_exit_1(monkeypatch, capsys):
    from tdm_edge.runners.cuda_rt import CudaError

    def fail(args):
        raise CudaError("cudaMalloc(1048576 bytes) failed: cudaErrorMemoryAllocation\nmore detail")

    from tdm_edge.train import trained

    monkeypatch.setattr(trained, "model_from_args", fail)  # what flops calls first: the failure path of any runner
    assert cli.main(["flops", "--model", "deit_tiny_patch16_224"]) == 1
    err = capsys.readouterr().err
    assert err == "tdm-edge flops: error: cudaMalloc(1048576 bytes) failed: cudaErrorMemoryAllocation\n"


def test_a_closed_output_pipe_stops_quietly_with_sigpipes_status(tmp_path):
    """`tdm-edge models | head -1`: the reader is gone before the output is written; no traceback, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE (Python ignores SIGPIPE, so BrokenPipeError)
    try:
        proc = subprocess.run([sys.executable, "-m", "tdm_edge.cli", "models"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == "", proc.stderr
