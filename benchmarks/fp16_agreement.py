"""fp16 export (``tdm-edge export --precision fp16``) against the fp32 PyTorch model: top-1 and token selections.

BAT DeiT-S keep 0.7, random weights made trained-like (:func:`tdm_edge.bench.models.trained_like`, seed 0 for the
timm init). Two fp16 graphs are compared with fp32 PyTorch on ONNX Runtime CPU over a fixed set of 32 images
(16 structured images cycling the five patterns of :func:`tdm_edge.export.verify.structured_images`, 16
standard-normal inputs, seed 7):

- ``ours``: the export, token selection and LayerNorms in fp32 by Casts (verified by the export itself);
- ``naive``: the same model traced in fp16 throughout (selection and LayerNorm in fp16), for comparison only.

ONNX Runtime's CPU provider has few fp16 kernels and casts most fp16 nodes up to fp32 (its InsertCastTransformer):
these numbers are fp16 *storage* (weights and activations rounded to fp16 between nodes), not fp16 arithmetic as a
GPU does it. The lint (``check --trt 11``) result is for the graph as written.

    python benchmarks/fp16_agreement.py > benchmarks/results/fp16_agreement.md

``--demo FP32.onnx FP16.onnx HELDOUT``: instead, the trained demo model's two exports on a labelled held-out set
(``tdm-edge make-dataset``): top-1 of each and how many predictions are identical.
"""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

import tdm_edge.reduce  # noqa: F401  (registers tdm_* models)
from tdm_edge.bench.models import trained_like
from tdm_edge.export import fp16
from tdm_edge.export.onnx_export import export_onnx
from tdm_edge.export.verify import run_with_selections, structured_images, with_outputs
from tdm_edge.lint.check import check_model
from tdm_edge.runners.onnxrt import OnnxRuntimeRunner


@contextlib.contextmanager
def naive_fp16():
    """Trace fp16 without the fp32 selection path and with LayerNorm in fp16 (what the export must not do)."""
    saved = fp16.fp32_selection, fp16.half_copy

    def half_copy(model):
        half = copy.deepcopy(model).half().eval()
        for module in half.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = True
        return half

    fp16.fp32_selection, fp16.half_copy = contextlib.nullcontext, half_copy
    try:
        yield
    finally:
        fp16.fp32_selection, fp16.half_copy = saved


def agreement(model, path: str, images: list, refs: list) -> dict:
    proto = onnx.load(path)
    names = sorted({o for n in proto.graph.node for o in n.output if o.startswith("tdm_")})
    probe, _ = with_outputs(proto, names)
    top1 = kept = order = 0
    margins, diffs = [], []
    with OnnxRuntimeRunner(probe, intra_op_threads=1) as runner:
        for x, (ref, ref_sel, _) in zip(images, refs):
            out = runner.infer({"input": x[None]})
            same = bool(out["logits"].argmax() == ref.argmax())
            top1 += same
            if not same:
                top2 = np.sort(ref[0])[-2:]
                margins.append(round(float(top2[1] - top2[0]), 4))
            diffs.append(float(np.abs(out["logits"] - ref).max()))
            att, ref_att = out["tdm_attentive_0"][0], ref_sel["tdm_attentive_0"][0]
            kept += set(att.tolist()) == set(ref_att.tolist())
            order += bool(np.array_equal(att, ref_att))
    return {"top1_identical": top1, "top1_flip_fp32_margins": margins, "stage1_kept_set_identical": kept,
            "stage1_order_identical": order, "logit_diff_median": float(np.median(diffs)),
            "logit_diff_max": float(max(diffs)), "images": len(images)}


def demo_agreement(fp32_path: str, fp16_path: str, data: str) -> None:
    """Top-1 of the fp32 and fp16 exports of a trained model on an ImageFolder, and identical predictions."""
    from torch.utils.data import DataLoader

    from tdm_edge.metadata import read_metadata
    from tdm_edge.train.data import eval_transform, image_folder

    loader = DataLoader(image_folder(data, eval_transform(read_metadata(fp16_path)["preprocessing"])), batch_size=1)
    preds, labels, diffs = {fp32_path: [], fp16_path: []}, [], []
    with OnnxRuntimeRunner(fp32_path) as r32, OnnxRuntimeRunner(fp16_path) as r16:
        for x, y in loader:
            a, b = (r.infer({"input": x.numpy()})["logits"] for r in (r32, r16))
            preds[fp32_path].append(int(a.argmax()))
            preds[fp16_path].append(int(b.argmax()))
            diffs.append(float(np.abs(a - b).max()))
            labels.append(int(y))
    p32, p16, lab = (np.array(v) for v in (preds[fp32_path], preds[fp16_path], labels))
    print(f"{len(lab)} images: fp32 export top-1 {100 * (p32 == lab).mean():.2f} %, fp16 export top-1 "
          f"{100 * (p16 == lab).mean():.2f} %, predictions identical {int((p32 == p16).sum())}/{len(lab)}, "
          f"max |logit diff| median {np.median(diffs):.3g}, max {max(diffs):.3g}")


def main() -> None:
    import sys

    if sys.argv[1:2] == ["--demo"]:
        return demo_agreement(*sys.argv[2:5])
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    import timm

    model = trained_like(timm.create_model("tdm_deit_small_patch16_224", method="bat", keep_rate=0.7)).eval()
    results, started = {}, time.time()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"ours": str(Path(tmp, "ours.onnx")), "naive": str(Path(tmp, "naive.onnx"))}
        report = export_onnx(model, paths["ours"], precision="fp16", verify_threads=1)
        results["export_verification"] = report.verification.summary()
        with naive_fp16():
            export_onnx(model, paths["naive"], precision="fp16", verify=False)
        pre = report.metadata["preprocessing"]
        images = list(structured_images(16, (224, 224), pre["mean"], pre["std"]))
        images += list(torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(7)).numpy())
        refs = [run_with_selections(model, torch.from_numpy(x[None])) for x in images]
        for name, path in paths.items():
            proto = onnx.load(path)
            results[name] = agreement(model, path, images, refs)
            results[name]["check"] = {trt: [str(f) for f in check_model(proto, trt)] for trt in ("8.6", "10", "11")}
    top2 = [float(np.diff(np.sort(r[0][0])[-2:])[0]) for r in refs]
    print("# fp16 export vs fp32 PyTorch: BAT DeiT-S 0.7 (trained-like random weights)\n")
    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}; ONNX Runtime CPU, 1 thread; torch "
          f"{torch.__version__}; run took {time.time() - started:.0f} s. fp32 top-2 logit margin over the set: "
          f"median {np.median(top2):.3g}, min {min(top2):.3g}. Script: benchmarks/fp16_agreement.py.\n")
    print(f"Export's own verification (fp16 tolerances): {results['export_verification']}\n")
    print("| graph | top-1 identical | stage-1 kept set identical | stage-1 order identical | max logit diff "
          "(median / max) | check 8.6 / 10 / 11 findings |")
    print("|---|---|---|---|---|---|")
    for name in ("ours", "naive"):
        r = results[name]
        checks = " / ".join(str(len(r["check"][t])) for t in ("8.6", "10", "11"))
        print(f"| {name} | {r['top1_identical']}/{r['images']} | {r['stage1_kept_set_identical']}/{r['images']} | "
              f"{r['stage1_order_identical']}/{r['images']} | {r['logit_diff_median']:.3g} / "
              f"{r['logit_diff_max']:.3g} | {checks} |")
    print("\n```json\n" + json.dumps(results, indent=1) + "\n```")


if __name__ == "__main__":
    main()
