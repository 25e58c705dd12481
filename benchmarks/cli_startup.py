"""How soon a bad command line is answered: fresh interpreter start, ``import tdm_edge.cli`` and the one-line error.

The unit test (tests/test_cli.py) checks what makes the answer immediate: the error comes before torch, timm, onnx,
ONNX Runtime or OpenCV is imported. The seconds live here, measured in fresh processes, with the machine named:

    python benchmarks/cli_startup.py --repeats 20

writes ``benchmarks/results/cli_startup.{json,md}``. Each repeat runs ``python -m tdm_edge.cli export --batch 0``
(refused: exit 2) and, for scale, ``python -c pass`` (the interpreter alone) in turn.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CASES = {"bare interpreter": ["-c", "pass"],
         "export --batch 0 (refused)": ["-m", "tdm_edge.cli", "export", "-o", "m.onnx", "--batch", "0"]}


def wall(args: list[str]) -> tuple[float, int]:
    """Seconds from spawn to exit of ``python args`` and its exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start, done.returncode


def measure(repeats: int) -> dict[str, list[float]]:
    """Per case, the wall seconds of each repeat; cases alternate within a repeat so drifts hit both."""
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for name, args in CASES.items():  # warm the page cache once
        wall(args)
    for _ in range(repeats):
        for name, args in CASES.items():
            seconds, code = wall(args)
            expected = 2 if "refused" in name else 0
            if code != expected:
                raise SystemExit(f"cli_startup: {name} exited {code}, expected {expected}")
            times[name].append(seconds)
    return times


def table(times: dict[str, list[float]]) -> str:
    rows = ["| command | median | max | repeats |", "|---|---|---|---|"]
    for name, values in times.items():
        rows.append(f"| {name} | {statistics.median(values):.3f} s | {max(values):.3f} s | {len(values)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=str(RESULTS / "cli_startup.json"))
    args = p.parse_args(argv)
    if not 1 <= args.repeats <= 1000:
        print("cli_startup: --repeats must be in 1..1000", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    times = measure(args.repeats)
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "python": platform.python_version(),
               "load average before/after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"machine": machine, "seconds": times}, indent=1) + "\n")
    os.replace(tmp, out)
    print(json.dumps(machine))
    print(table(times))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
