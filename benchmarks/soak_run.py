"""Soak test of the camera loop: resident memory of ``tdm-edge run`` sampled over many minutes, slope reported.

Runs the real command in a subprocess (default: ``run synthetic:// OUT.mp4 --show-tokens --headless`` on the
shipped demo model with ONNX Runtime, as a camera left running overnight would), reads its resident memory
(``VmRSS`` in ``/proc/PID/status``) every ``--every`` seconds, stops it with SIGINT after ``--minutes`` and checks
that the video was finalised. After ``--warmup`` minutes the least-squares slope (bytes per minute and per frame)
and the spread (max - min) of the samples are the result: a loop that keeps something per frame shows a steady
slope; ONNX Runtime's arenas and the allocator settle in the warm-up.

    python benchmarks/soak_run.py --minutes 22 --warmup 2 [--out benchmarks/results/soak_run]

Writes ``OUT.json`` (every sample) and ``OUT.md``. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` from ``/proc/PID/status`` (``VmRSS`` is in kB), or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0.0 for fewer than two)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def frames_in(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=22.0, help="how long to run (default 22)")
    ap.add_argument("--warmup", type=float, default=2.0, help="minutes left out of the slope (default 2)")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples (default 5)")
    ap.add_argument("--rate", type=float, default=30.0, help="synthetic:// frames per second (default 30)")
    ap.add_argument("--out", default="benchmarks/results/soak_run", help="result files, without suffix")
    ap.add_argument("--budget-mb", type=float, default=2.0, help="allowed growth after warm-up (default 2 MB)")
    args = ap.parse_args(argv)

    from tdm_edge.train.trained import demo_model_path

    with tempfile.TemporaryDirectory() as tmp:
        video, onnx = Path(tmp) / "soak.mp4", Path(tmp) / "demo.onnx"
        subprocess.run([sys.executable, "-m", "tdm_edge.cli", "export", "--checkpoint", str(demo_model_path()),
                        "-o", str(onnx), "--selection-outputs"], check=True, stdout=subprocess.DEVNULL)
        cmd = [sys.executable, "-m", "tdm_edge.cli", "run", "synthetic://", str(video), "--model", str(onnx),
               "--show-tokens", "--headless", "--backend", "ort", "--threads", "1", "--input-rate", str(args.rate)]
        print("running:", " ".join(cmd[2:]), flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        start, samples = time.monotonic(), []
        try:
            while time.monotonic() - start < 60 * args.minutes and proc.poll() is None:
                value = rss_bytes(proc.pid)
                if value is not None:
                    samples.append((time.monotonic() - start, value))
                if len(samples) % 12 == 1:
                    print(f"[{samples[-1][0] / 60:5.1f} min] RSS {samples[-1][1] / 2**20:.1f} MB", flush=True)
                time.sleep(args.every)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=120)
        elapsed = time.monotonic() - start
        written = frames_in(video) if video.exists() else 0

    print(output.strip())
    if not samples or proc.returncode not in (0, 130):
        print(f"soak: the run ended with exit code {proc.returncode}", file=sys.stderr)
        return 1
    processed = next((int(w) for line in output.splitlines() for w, nxt in zip(line.split(), line.split()[1:])
                      if nxt == "processed,"), 0)
    settled = [(t / 60, rss) for t, rss in samples if t >= 60 * args.warmup]
    per_minute = slope(settled)
    fps = processed / elapsed if elapsed else 0.0
    growth = max(r for _, r in settled) - min(r for _, r in settled) if settled else 0
    result = {
        "command": "tdm-edge " + " ".join(cmd[3:]).replace(str(video), "OUT.mp4").replace(str(onnx), "demo.onnx"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores", "python": sys.version.split()[0],
        "minutes": round(elapsed / 60, 2), "warmup_minutes": args.warmup, "frames_processed": processed,
        "frames_in_video": written, "exit_code": proc.returncode,
        "rss_mb_first": samples[0][1] / 2**20 if samples else None,
        "rss_mb_after_warmup": settled[0][1] / 2**20 if settled else None,
        "rss_mb_last": samples[-1][1] / 2**20 if samples else None,
        "spread_after_warmup_mb": growth / 2**20, "slope_bytes_per_minute": per_minute,
        "slope_bytes_per_frame": per_minute / (60 * fps) if fps else None,
        "budget_mb": args.budget_mb, "within_budget": growth <= args.budget_mb * 2**20,
        "samples": [[round(t, 1), r] for t, r in samples],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    verdict = "within" if result["within_budget"] else "OVER"
    out.with_suffix(".md").write_text(
        f"# Soak: resident memory of `tdm-edge run` over {result['minutes']} minutes\n\n"
        f"- command: `{result['command']}` (the shipped demo model exported with `--selection-outputs`, ONNX Runtime CPU, 1 thread)\n"
        f"- machine: {result['machine']}, Python {result['python']}; other jobs shared the machine\n"
        f"- frames processed: {processed} ({fps:.1f} FPS), in the finalised video: {written}, exit code "
        f"{proc.returncode}\n"
        f"- RSS: {result['rss_mb_first']:.1f} MB at the first sample, {result['rss_mb_after_warmup']:.1f} MB after "
        f"the {args.warmup:g}-minute warm-up, {result['rss_mb_last']:.1f} MB at the end\n"
        f"- after warm-up: spread {result['spread_after_warmup_mb']:.2f} MB ({verdict} the {args.budget_mb:g} MB "
        f"budget), least-squares slope {per_minute / 1024:.1f} KB/minute"
        + (f" = {result['slope_bytes_per_frame']:.1f} bytes/frame\n" if fps else "\n"))
    print(out.with_suffix(".md").read_text())
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
