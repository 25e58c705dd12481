"""GMAC counts: the paper's DeiT numbers and an analytic count for a tiny ViT."""

import json

import pytest
import torch

from tdm_edge import cli
from tdm_edge.reduce.flops import count_macs, flops_report
from tdm_edge.reduce.models import create_model
from tdm_edge.reduce.patch import patch_vit

from ..conftest import tiny_vit


def _analytic_vit_macs(tokens_attn, tokens_mlp, c, patches, patch_size, classes, mlp_ratio=4):
    """Linear layers, attention products, affine layer norms and the conv stem, block by block."""
    macs = patches * 3 * patch_size * patch_size * c
    for n, m in zip(tokens_attn, tokens_mlp):
        macs += n * c * 3 * c + 2 * n * n * c + n * c * c  # qkv, QK^T and AV, proj
        macs += 2 * m * c * mlp_ratio * c  # fc1, fc2
        macs += n * c + m * c  # norm1, norm2
    return macs + tokens_mlp[-1] * c + c * classes  # final norm over all tokens, head on the class token


def test_unpruned_tiny_vit_matches_analytic_count():
    model = tiny_vit()
    expected = _analytic_vit_macs([65] * 4, [65] * 4, 32, 64, 4, 10)
    assert count_macs(model, torch.zeros(1, 3, 32, 32)) == expected


def test_slice_pruned_tiny_vit_matches_analytic_count():
    # slicing does no arithmetic: the count is exactly the linear layers at the reduced token counts
    from dataclasses import replace
    model = patch_vit(tiny_vit(), keep_rate=0.5, prune_blocks=(1, 2))
    for blk in model.blocks:
        if blk.tdm_stage is not None:
            blk.tdm_stage = replace(blk.tdm_stage, method="slice")
    expected = _analytic_vit_macs([65, 65, 33], [65, 33, 17, 17], 32, 64, 4, 10)
    expected = _analytic_vit_macs([65, 65, 33, 17], [65, 33, 17, 17], 32, 64, 4, 10)
    assert count_macs(model, torch.zeros(1, 3, 32, 32)) == expected


@pytest.mark.parametrize("name,keep,base,pruned,tol", [
    ("deit_small_patch16_224", 0.7, 4.60, 3.00, 0.03),
    ("deit_tiny_patch16_224", 0.7, 1.26, 0.81, 0.02),
])
def test_paper_numbers(name, keep, base, pruned, tol):
    report = flops_report(create_model(name, keep_rate=keep))
    assert abs(report.baseline_gmacs - base) <= (0.02 if base > 2 else 0.01)
    assert abs(report.gmacs - pruned) <= tol
    assert report.tokens == [197] * 4 + [139] * 3 + [98] * 3 + [69] * 2


def test_cli_json(capsys):
    assert cli.main(["flops", "--model", "deit_tiny_patch16_224", "--keep-rate", "1.0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == [197] * 12 and out["gmacs"] == out["baseline_gmacs"]


@pytest.mark.parametrize("argv,message", [
    (["--keep-rate", "1.5"], "keep rate must be in (0, 1]"),
    (["--keep-rate", "abc"], "not a number"),
    (["--model", "resnet50"], "not a timm VisionTransformer"),
    (["--model", "deit_smal_patch16_224"], "unknown model"),
    (["--prune-blocks", "3,12"], "out of range"),
    (["--checkpoint", "/nonexistent/w.pth"], "checkpoint not found"),
])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    try:
        code = cli.main(["flops", *argv])
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1
