"""`tdm-edge models` from the stored catalog (no torch, no timm), which must equal a live scan of timm; the
project's own models listed, counted and named like every other model."""

import json
import subprocess
import sys

from tdm_edge import cli, model_catalog


def test_stored_catalog_equals_a_live_scan_of_the_installed_timm():
    version, stored = model_catalog.stored()
    assert version == model_catalog.installed_timm()  # else regenerate: python -m tdm_edge.model_catalog --write
    assert stored == model_catalog.scan()
    from tdm_edge.reduce.models import BASES

    assert model_catalog.variants() == BASES


def test_models_answers_without_importing_torch_or_timm():
    code = ("import sys; from tdm_edge import cli; rc = cli.main(['models', 'tdm_*']); "
            "print(rc, 'torch' in sys.modules, 'timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "methods:"
    assert out.strip().splitlines()[-1] == "0 False False"
    rows = [line.split() for line in out.splitlines() if line.startswith("  tdm_vit_micro_patch4_56")]
    assert rows == [["tdm_vit_micro_patch4_56", "4", "56", "4", "48", "2"]]


def test_a_live_scan_is_used_when_timm_differs(monkeypatch):
    said = []
    monkeypatch.setattr(model_catalog, "installed_timm", lambda: "0.0.1")
    monkeypatch.setattr(model_catalog, "scan", lambda: [model_catalog.Entry("x", ())])
    assert model_catalog.catalog(log=said.append) == [model_catalog.Entry("x", ())]
    assert said and "timm 0.0.1" in said[0]


def test_matching_filters_like_timm():
    entries = model_catalog.stored()[1]
    names = [e.name for e in model_catalog.matching(entries, "deit_*patch16_224")]
    assert names == ["deit_base_distilled_patch16_224", "deit_base_patch16_224", "deit_small_distilled_patch16_224",
                     "deit_small_patch16_224", "deit_tiny_distilled_patch16_224", "deit_tiny_patch16_224"]
    assert [e.patchable for e in model_catalog.matching(entries, "deit_*patch16_224")] == [False, True] * 3


def test_flops_knows_the_projects_own_model_and_names_it(capsys):
    assert cli.main(["flops", "--model", "tdm_vit_micro_patch4_56", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["model"] == "tdm_vit_micro_patch4_56" and report["stage_tokens"] == [197, 139, 98, 69]
    assert report["img_size"] == 56


def test_flops_and_export_name_the_demo_checkpoint_by_its_record(tmp_path, capsys):
    from tdm_edge.metadata import read_metadata
    from tdm_edge.train.trained import demo_model_path

    assert cli.main(["flops", "--checkpoint", str(demo_model_path()), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"] == "tdm_vit_micro_patch4_56"  # stdout: one JSON object
    assert "build: tdm_vit_micro_patch4_56 from model.safetensors" in captured.err  # progress on stderr
    out = tmp_path / "m.onnx"
    assert cli.main(["export", "--checkpoint", str(demo_model_path()), "--no-verify", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "deit_small" not in text and "build: tdm_vit_micro_patch4_56 from model.safetensors" in text
    assert read_metadata(out)["model"]["name"] == "tdm_vit_micro_patch4_56"
