"""``make demo``: the whole pipeline on the shipped demo model, offline, each step as the command a user would type.

The demo model (``tdm_edge/assets/demo``, BAT at keep 0.7, trained on our procedural shapes) is evaluated on a
freshly generated held-out set, counted, exported (standard ops with the token selections as outputs, and the fused
plugin graph), linted for TensorRT, quantized (TensorRT Q/DQ and ONNX Runtime CPU INT8) and compared, benchmarked
against its unpruned self and the ideal slice, and run over a generated clip with the token map. Everything lands
in ``out/demo``; ``report.md`` (with pictures) and ``report.json`` sum it up. With TensorRT installed, it also
builds an engine and runs the clip on it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import time

from .errors import UsageError


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def tdm(*argv: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run ``tdm-edge ARGV`` in this process, printing it first like a shell would; returns what it printed."""
    from . import cli

    print(f"\n$ tdm-edge {shlex.join(argv)}", flush=True)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, buffer)):
        try:
            rc = cli.main(list(argv))
        except SystemExit as exc:  # argparse
            rc = exc.code
    if rc not in ok:
        raise UsageError(f"'tdm-edge {argv[0]}' exited {rc}; the demo stops here")
    return buffer.getvalue()


def make_clip(image_dir: str, path: str, per_image: int = 4, size: int = 448, images: int = 24) -> int:
    """A video (mp4v) of the first ``images`` held-out images, each shown for ``per_image`` frames; its frames."""
    import cv2

    files = sorted(os.path.join(root, f) for root, _, names in os.walk(image_dir) for f in names
                   if f.lower().endswith((".png", ".jpg")))
    step = max(1, len(files) // images)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (size, size))
    frames = 0
    try:
        for file in files[::step][:images]:
            frame = cv2.resize(cv2.imread(file), (size, size), interpolation=cv2.INTER_NEAREST)
            for _ in range(per_image):
                writer.write(frame)
                frames += 1
    finally:
        writer.release()
    return frames


def grab_frames(video: str, out_dir: str, count: int = 3) -> list[str]:
    """``count`` evenly spaced frames of ``video`` as PNGs (for the report)."""
    import cv2

    cap = cv2.VideoCapture(video)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    paths = []
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, (2 * i + 1) * total // (2 * count))
        ok, frame = cap.read()
        if ok:
            paths.append(os.path.join(out_dir, f"frame_{i}.png"))
            cv2.imwrite(paths[-1], frame)
    cap.release()
    return paths


def run(out: str, checkpoint: str | None = None, quick: bool = False) -> dict:
    from .train.trained import demo_model_path, read_record

    start = time.perf_counter()
    ckpt = checkpoint or str(demo_model_path())
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    record = read_record(ckpt)
    report: dict = {"model": ckpt, "labels": record["labels"], "steps": {}}
    print(f"== demo model: {ckpt} ({record['model']}, {record['reduction']['method']} keep "
          f"{record['reduction']['keep_rate']}, classes: {', '.join(record['labels'])})")

    print("\n== 1. a fresh held-out set (unseen seed) and the model's accuracy on it")
    per_class = "10" if quick else "40"
    tdm("make-dataset", p("heldout"), "--per-class", per_class, "--seed", "7")
    tdm("make-dataset", p("calib"), "--per-class", "10", "--seed", "8")
    report["steps"]["eval"] = json.loads(tdm("eval", "--checkpoint", ckpt, "--data", p("heldout"), "--json")
                                         .strip().splitlines()[-1])

    print("\n== 2. GMACs, the paper's counting")
    report["steps"]["flops"] = json.loads(tdm("flops", "--checkpoint", ckpt, "--json").strip().splitlines()[-1])

    print("\n== 3. ONNX export: standard ops (with the token selections as outputs), and the fused plugin graph")
    tdm("export", "--checkpoint", ckpt, "--selection-outputs", "-o", p("demo_bat.onnx"))
    tdm("export", "--checkpoint", ckpt, "--merge", "plugin", "-o", p("demo_bat_plugin.onnx"))

    print("\n== 4. TensorRT ONNX-parser lint (static: TensorRT itself is not run)")
    lint = {}
    for model in ("demo_bat.onnx", "demo_bat_plugin.onnx"):
        for trt in ("8.5", "10"):
            text = tdm("check", p(model), "--trt", trt, ok=(0, 1))
            lint[f"{model} TensorRT {trt}"] = text.strip().splitlines()[-1]
    report["steps"]["lint"] = lint

    print("\n== 5. INT8: explicit Q/DQ for TensorRT, dynamic INT8 for ONNX Runtime CPU, and what changed")
    tdm("calibrate", p("demo_bat.onnx"), "--images", p("calib"), "--target", "trt", "-o", p("demo_bat.int8.onnx"))
    tdm("calibrate", p("demo_bat.onnx"), "--target", "cpu", "-o", p("demo_bat.cpu8.onnx"))
    report["steps"]["compare"] = {
        target: json.loads(tdm("compare", p("demo_bat.onnx"), p(f"demo_bat.{target}.onnx"), "--images",
                               p("heldout"), "--json").strip().splitlines()[-1])
        for target in ("int8", "cpu8")}
    report["steps"]["onnx_top1"] = {  # labelled accuracy of each file on ONNX Runtime, beside the agreement
        name: json.loads(tdm("eval", "--onnx", p(f"demo_bat{name}.onnx"), "--data", p("heldout"), "--json")
                         .strip().splitlines()[-1])["top1"]
        for name in ("", ".int8", ".cpu8")}

    print("\n== 6. latency against the unpruned model and the ideal slice (ONNX Runtime CPU, interleaved): the demo "
          "model, and DeiT-T (trained-like weights), where pruning pays")
    timing = ["--backend", "ort", "--batch", "1,8", "--runs", "5" if quick else "15", "--repeats", "1" if quick else "2"]
    deit_timing = timing if quick else timing[:-4] + ["--runs", "10", "--repeats", "1"]  # DeiT-T: one process
    benches = {}
    for key, model, how in (("demo", ["--checkpoint", ckpt], timing),
                            ("deit_t", ["--model", DEIT_T] + (["--img-size", "64"] if quick else []), deit_timing)):
        name = "bench" if key == "demo" else f"bench_{key}"
        tdm("bench", *model, *how, "--json", p(f"{name}.json"), "--plot", p(f"{name}.png"))
        with open(p(f"{name}.json")) as f:
            benches[key] = bench_summary(json.load(f), f"{name}.png")
    report["steps"]["bench"] = benches["demo"]  # the demo model's, as before
    report["steps"]["bench_deit_t"] = benches["deit_t"]
    report["steps"]["pays"] = pays_sentence(benches["deit_t"], benches["demo"])

    print("\n== 7. the camera loop over a generated clip, with the token map")
    frames = make_clip(p("heldout"), p("clip.mp4"), per_image=2 if quick else 4)
    model = p("demo_bat.onnx")
    if _tensorrt_available():
        tdm("build", model, "-o", p("demo_bat.engine"))
        model = p("demo_bat.engine")
    tdm("run", p("clip.mp4"), p("annotated.mp4"), "--model", model, "--headless", "--show-tokens", "--log",
        p("frames.jsonl"))
    with open(p("frames.jsonl")) as f:
        logged = [json.loads(line) for line in f if line.strip()]
    report["steps"]["video"] = {"input_frames": frames, "logged_frames": len(logged),
                                "output": p("annotated.mp4"), "pictures": grab_frames(p("annotated.mp4"), out)}

    report["seconds"] = round(time.perf_counter() - start, 1)
    write_report(report, out)
    return report


DEIT_T = "deit_tiny_patch16_224"


def bench_summary(result: dict, plot: str) -> dict:
    """What the report keeps of a ``tdm-edge bench`` result: per batch the paired ratios and the p50s; the model,
    its GMAC ratio, the machine's load, and the plot's file name."""
    from .bench.machine import state_text

    summary = {b: {"ratios": e["ratios"], "p50_ms": {k: v["p50_ms"] for k, v in e["per_model"].items()}}
               for b, e in result["batches"].items()}
    s = result["settings"]
    summary.update(gmac_ratio=result["gmac_ratio"], model=s["model"], method=s["method"], keep_rate=s["keep_rate"],
                   plot=plot, machine=state_text(result["machine_state"]) if result.get("machine_state") else None)
    return summary


def batches_of(summary: dict) -> list[str]:
    return [b for b in summary if b.isdigit()]


def b_name(summary: dict) -> str:
    return f"{summary['model']}, {summary['method']} {summary['keep_rate']}"


def _costs(summary: dict, batch: str) -> tuple[float, float, float]:
    """``(pruned / unpruned paired ratio, merge cost ms, work saved ms)`` at ``batch``: the merge's cost is the
    pruned model's p50 over the ideal slice's (the same token counts, selected for free), the work saved the
    unpruned p50 over the ideal slice's."""
    ms = summary[batch]["p50_ms"]
    return summary[batch]["ratios"]["pruned/unpruned"], ms["pruned"] - ms["ideal"], ms["unpruned"] - ms["ideal"]


def _verdict(summary: dict, label: str) -> str:
    """``pruning pays on LABEL (at batch 8 only): BAT 0.7 takes 0.77x ...``: where it paid, with the numbers."""
    batches = batches_of(summary)
    paying = [b for b in batches if _costs(summary, b)[0] < 1.0]
    where = "" if len(paying) in (0, len(batches)) else f" only at batch {' and '.join(paying)}"
    parts = [f"{_costs(summary, b)[0]:.2f}x{' the unpruned time' if i == 0 else ''} at batch {b} "
             f"({summary[b]['p50_ms']['pruned']:.2f} vs {summary[b]['p50_ms']['unpruned']:.2f} ms)"
             for i, b in enumerate(batches)]
    return (f"pruning {'pays' if paying else 'does not pay'} on {label}{where}: {summary['method'].upper()} "
            f"{summary['keep_rate']} takes " + " and ".join(parts))


def pays_sentence(large: dict, small: dict) -> str:
    """One plain sentence, with the numbers of this run: where pruning pays, where it does not, and why (the merge's
    cost per stage against the work the tokens it removes would have cost)."""
    clauses, reasons = [], []
    for label, summary in ((large["model"], large), (f"the demo model ({small['model']})", small)):
        clauses.append(_verdict(summary, label))
        costs = [_costs(summary, b) for b in batches_of(summary)]
        reasons.append(f"on {summary['model']} the merge stages add {'/'.join(f'{c[1]:.2f}' for c in costs)} ms "
                       f"over the ideal slice (same token counts, selected for free) while removing the tokens "
                       f"saves {'/'.join(f'{c[2]:.2f}' for c in costs)} ms (batch {'/'.join(batches_of(summary))})")
    return (clauses[0][0].upper() + clauses[0][1:] + "; " + clauses[1] + ". Why: " + "; ".join(reasons)
            + ". The merge costs about the same per stage whatever the model, while the work it removes grows with "
            "the model's width: pruning pays only where the work removed is the larger.")


def _tensorrt_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def write_report(report: dict, out: str) -> None:
    """``report.json`` and ``report.md`` (with the bench plot and a few annotated frames) in ``out``."""
    from .outputs import write_files

    s = report["steps"]
    ev, fl = s["eval"], s["flops"]
    lines = ["# tdm-edge demo report", "",
             f"Model: `{report['model']}`; classes {', '.join(report['labels'])}. Run took {report['seconds']} s.", "",
             f"**{s['pays']}**", "",
             "## Accuracy (fresh held-out set)", "", f"top-1 **{ev.get('top1', ev.get('top-1'))} %**, "
             f"top-5 {ev.get('top5', ev.get('top-5'))} % on {ev.get('images', '?')} images", "",
             "## Cost", "", f"GMACs {fl['gmacs']:.4f} (unpruned {fl['baseline_gmacs']:.4f}, ratio {fl['ratio']:.3f}); "
             f"tokens per stage {' -> '.join(map(str, fl['stage_tokens']))}", "",
             "## TensorRT lint", ""] + [f"- {k}: {v}" for k, v in s["lint"].items()] + [
             "", "## INT8 against FP32 (held-out set)", "",
             f"Top-1 on ONNX Runtime (`tdm-edge eval --onnx`): FP32 export {s['onnx_top1']['']} %, TensorRT Q/DQ "
             f"{s['onnx_top1']['.int8']} % (ONNX Runtime's int8 arithmetic, not TensorRT's), CPU INT8 "
             f"{s['onnx_top1']['.cpu8']} %.", "",
             "| model | top-1 agreement | logit cosine (mean, min) | first stage: kept set identical on |",
             "|---|---|---|---|"]
    for name, c in s["compare"].items():
        kept = c["stages"][0]["kept"]["identical_images"] if c.get("stages") else None
        lines.append(f"| demo_bat.{name}.onnx | {100 * c['top1_agreement']:.1f} % | {c['logit_cosine_mean']:.4f}, "
                     f"{c['logit_cosine_min']:.4f} | " + ("-" if kept is None else f"{100 * kept:.1f} % of images") + " |")
    lines += ["", "## Latency: where pruning pays (ONNX Runtime CPU, interleaved)", "", f"**{s['pays']}**", "",
              "p50: the median of every timed run; the ratios are paired by round (the models ran back to back), "
              "median over the rounds and processes, so they need not equal the ratio of the p50s shown.", ""]
    for title, b in ((f"DeiT-T ({s['bench_deit_t']['model']}, trained-like random weights)", s["bench_deit_t"]),
                     (f"The demo model ({b_name(s['bench'])})", s["bench"])):
        lines += [f"### {title}", "", f"![bench]({b['plot']})", "",
                  "| batch | p50 ms unpruned / pruned / ideal slice | pruned / unpruned (paired) | "
                  "pruned / ideal slice (paired) |", "|---|---|---|---|"]
        for batch in batches_of(b):
            ms, r = b[batch]["p50_ms"], b[batch]["ratios"]
            lines.append(f"| {batch} | {ms['unpruned']:.2f} / {ms['pruned']:.2f} / {ms['ideal']:.2f} | "
                         f"{r['pruned/unpruned']:.3f} | {r['pruned/ideal']:.3f} |")
        lines += ["", f"GMAC ratio {b['gmac_ratio']:.3f}; machine: {b.get('machine') or 'not recorded'}.", ""]
    lines += ["",
             f"## Video: {s['video']['input_frames']} frames in, {s['video']['logged_frames']} logged", ""]
    lines += [f"![frame]({os.path.basename(pic)})" for pic in s["video"]["pictures"]]
    write_files({os.path.join(out, "report.json"): (json.dumps(report, indent=1) + "\n").encode(),
                 os.path.join(out, "report.md"): ("\n".join(lines) + "\n").encode()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tdm-edge-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a model written by tdm-edge train (default: the demo model)")
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--quick", action="store_true", help="smaller sets and shorter measurements (tests)")
    args = parser.parse_args(argv)
    try:
        report = run(args.out, args.checkpoint, args.quick)
    except UsageError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    print(f"\n== done in {report['seconds']} s. Everything is in {args.out}/:")
    for name in ("report.md", "report.json", "annotated.mp4", "bench.png", "bench_deit_t.png", "demo_bat.onnx",
                 "demo_bat_plugin.onnx",
                 "demo_bat.int8.onnx", "demo_bat.cpu8.onnx"):
        print(f"   {os.path.join(args.out, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
