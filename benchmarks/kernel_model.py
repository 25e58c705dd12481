"""Performance model of the fused BAT merge stage (plugins/tdm_merge): estimates, not measurements.

Prints, for one stage (default: DeiT-S stage 1, 197 -> 139 tokens, c = 384), per kernel of the chain in
batMergeKernel.cu: work, parallelism (warps), shared-memory and DRAM traffic, and the estimated time on an AGX Orin
and an H100 at batch 1 and 64; then the whole stage against the decomposed stage (N small kernels). docs/kernel.md
quotes its output and says what a GPU run must measure to confirm it (``benchmarks/fused_merge.py``).

The model, per kernel: time = launch overhead o + max(issue, latency, shared memory, DRAM), where
- issue: warp instructions on the busiest SM / 4 schedulers per clock,
- latency: a warp's dependent chain at 3 (optimistic) or 6 (pessimistic) clocks per instruction, which bounds a
  kernel whose SMs hold too few warps to hide it (batch 1); tables give both as a range,
- shared memory: 4-byte-bank wavefronts on the busiest SM, one per clock,
- DRAM: bytes that must come from or go to memory once / bandwidth.
Instruction counts per inner-loop step are read off the source (compares, loads, adds), rounded up.

    python benchmarks/kernel_model.py [--stage 0|1|2] [--markdown]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

LATENCIES = (3, 6)  # clocks per instruction of a lone warp: optimistic (ILP in unrolled loops), pessimistic
THREADS = 256  # kThreads, kTileThreads in batMergeKernel.cu
SELECTION_WARPS = 16  # kSelectionThreads / 32
TILE = 8  # kTile: similarity blocks of 8 x 8 dot products, 64 threads
TILE_WARPS = TILE * TILE // 32
LANES = 32


@dataclass(frozen=True)
class Gpu:
    name: str
    sms: int
    ghz: float
    dram_gbs: float


ORIN = Gpu("AGX Orin (16 SMs, 1.3 GHz, 204.8 GB/s)", 16, 1.3, 204.8)
H100 = Gpu("H100 SXM (132 SMs, 1.755 GHz, 3.35 TB/s)", 132, 1.755, 3350.0)


@dataclass(frozen=True)
class Sizes:
    n: int
    c: int
    keep: int
    pairs: int
    clusters: int
    knn: int

    @property
    def ka(self) -> int:
        return (self.keep + 1) // 2

    @property
    def kb(self) -> int:
        return self.keep // 2

    @property
    def l(self) -> int:
        return self.n - 1 - self.keep

    @property
    def n_out(self) -> int:
        return 1 + self.keep - self.pairs + self.clusters


@dataclass(frozen=True)
class Kernel:
    name: str
    work: str
    warps: int  # per image
    instr_per_warp: float  # warp instructions of one warp (its dependent chain)
    smem_per_warp: float = 0.0  # shared-memory wavefronts of one warp
    dram_bytes: float = 0.0  # per image
    per_block_warps: int = THREADS // LANES
    one_block_per_image: bool = False
    resident: int = 3  # blocks per SM at once (registers: 256 threads x 66-80 registers)


def kernels(s: Sizes, bytes_per_value: int = 4) -> list[Kernel]:
    """The five kernels of batMergeKernel.cu for one image."""
    p, c, ka, kb, l, r, m, k = s.n - 1, s.c, s.ka, s.kb, s.l, s.pairs, s.clusters, min(s.knn, s.l)
    chunks = math.ceil(c / LANES)
    tiles = math.ceil(ka / TILE) * math.ceil(kb / TILE) + math.ceil(l / TILE) ** 2
    per = lambda count: math.ceil(count / LANES)  # noqa: E731  (loop steps of one lane)
    butterfly = 5 * 12  # five shuffle steps of (value, index) with a total-order compare
    norm_warps = ka + kb
    # selection block (512 threads, 16 warps): phases 4, 5, 7 a warp per item, 6 and 8 a thread per item
    phase8_items = kb * r + kb + m * l
    items_per_warp = math.ceil((ka + l) / SELECTION_WARPS)
    warp_item = per(max(ka, l)) * 10 + 2 * 5 * 3  # lane loop, then one or two butterflies
    selection_chain = (2 * items_per_warp * warp_item + max(m * 10, r * 6)
                       + math.ceil(m / SELECTION_WARPS) * (per(l) * 6 + 5 * 3)
                       + math.ceil(phase8_items / (SELECTION_WARPS * LANES)) * 30 + 5 * 20)
    # combine: instructions per output value, by row kind
    values = s.n_out * c
    combine_thread = (c * 6 + kb * c * (r * 4 + 12) + (ka - r) * c * 10 + m * c * (l * 4 + 10)) / values
    return [
        Kernel("1 decouple", f"{p} ranks x {p} compares", p, per(p) * 10 + 5 * 4 + 10, dram_bytes=p * 4),
        # a tile warp per chunk: 32 FMA, 16 LDS.128, 8 LDG + 8 STS staging, ~8 more; shared-memory wavefronts:
        # 8 (U rows, broadcast) + 8 (V: 8 columns x 16 bytes) + 8 (stores)
        Kernel("2 similarity", f"{ka}x{kb} + {l}x{l} dots + {norm_warps} norms, c={c}: "
               f"{(ka * kb + l * l + norm_warps) * c / 1e6:.2f} M FMA in {tiles} tiles",
               tiles * TILE_WARPS + norm_warps, chunks * 72 + 20,
               smem_per_warp=chunks * 24 * tiles * TILE_WARPS / (tiles * TILE_WARPS + norm_warps),
               dram_bytes=s.n * c * bytes_per_value, per_block_warps=TILE_WARPS, resident=15),
        Kernel("3 rows", f"{ka} argmax over {kb}; {l} d2 rows + {k} kNN passes",
               ka + l, per(l) * 10 + k * (per(l) * 20 + butterfly) + 40),
        Kernel("4 selection", f"phases 4-8 (ranks, delta, matching, centres, labels, weights, {phase8_items} coefs)",
               SELECTION_WARPS, selection_chain, per_block_warps=SELECTION_WARPS, one_block_per_image=True,
               resident=1),
        Kernel("5 combine", f"{values} values (~{combine_thread:.0f} instr each)", math.ceil(values / LANES),
               combine_thread, dram_bytes=values * bytes_per_value),
    ]


def kernel_us(kern: Kernel, gpu: Gpu, batch: int, lat: int) -> float:
    """Estimated time of one kernel's body (no launch overhead), ``lat`` clocks per dependent instruction."""
    if kern.one_block_per_image:
        blocks = batch
    else:
        blocks = batch * math.ceil(kern.warps / kern.per_block_warps)
    blocks_per_sm = math.ceil(blocks / gpu.sms)
    warps_per_sm = min(blocks_per_sm, kern.resident) * kern.per_block_warps
    waves = math.ceil(blocks_per_sm / kern.resident)
    warp_instr_sm = blocks_per_sm * kern.per_block_warps * kern.instr_per_warp
    issue = warp_instr_sm / 4
    latency = waves * kern.instr_per_warp * max(lat, math.ceil(warps_per_sm / 4))
    smem = blocks_per_sm * kern.per_block_warps * kern.smem_per_warp
    clocks = max(issue, latency, smem)
    dram_us = batch * kern.dram_bytes / (gpu.dram_gbs * 1e3)
    return max(clocks / (gpu.ghz * 1e3), dram_us)


def span(kern_list: list[Kernel], gpu: Gpu, batch: int) -> tuple[float, float]:
    """(optimistic, pessimistic) sum of the kernel bodies."""
    return tuple(sum(kernel_us(k, gpu, batch, lat) for k in kern_list) for lat in LATENCIES)


def cell(lo: float, hi: float) -> str:
    return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}"


def table(s: Sizes, batches=(1, 64)) -> list[str]:
    gpus = (ORIN, H100)
    rows = ["| kernel | work (one image) | warps per image | " + " | ".join(
        f"{g.name.split(' (')[0]} b={b} µs" for g in gpus for b in batches) + " |",
        "|---" * (3 + len(gpus) * len(batches)) + "|"]
    for kern in kernels(s):
        cells = [cell(*span([kern], g, b)) for g in gpus for b in batches]
        warps = "1 block" if kern.one_block_per_image else str(kern.warps)
        rows.append(f"| {kern.name} | {kern.work} | {warps} | " + " | ".join(cells) + " |")
    rows.append("| sum of kernel bodies | | | " + " | ".join(
        cell(*span(kernels(s), g, b)) for g in gpus for b in batches) + " |")
    return rows


def ratios(s: Sizes, overheads: dict[str, tuple[float, ...]], gaps: dict[str, float], counts=(40, 70)) -> list[str]:
    """Fused against the decomposed stage (N tiny kernels, N o) at batch 1, pessimistic latency. Fused serial:
    5 o + bodies (every launch cost paid in full, nothing overlapped); fused queued: the host enqueues the five
    launches back to back while the GPU runs, so the stage takes max(5 o, o + bodies + 4 gaps), gap = the GPU's
    idle time between two queued dependent kernels."""
    rows = ["| GPU | per-kernel cost o | fused, serial / queued | decomposed N o, N = "
            + " / ".join(map(str, counts)) + " | speed-up serial | speed-up queued |", "|---|---|---|---|---|---|"]
    for g in (ORIN, H100):
        body = span(kernels(s), g, 1)[1]
        for o in overheads[g.name]:
            serial = 5 * o + body
            queued = max(5 * o, o + body + 4 * gaps[g.name])
            dec = [n * o for n in counts]
            rows.append(f"| {g.name.split(' (')[0]} | {o:g} µs | {serial:.0f} / {queued:.0f} µs | "
                        + " / ".join(f"{d:.0f}" for d in dec) + " µs | "
                        + " / ".join(f"{d / serial:.1f}x" for d in dec) + " | "
                        + " / ".join(f"{d / queued:.1f}x" for d in dec) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, default=0, choices=(0, 1, 2), help="DeiT-S stage (0: 197 -> 139)")
    args = parser.parse_args(argv)
    from tdm_edge.reduce.schedule import build_schedule

    st = build_schedule(197, 12, "bat", 0.7, None, 0.25, 5, None).stages[args.stage]
    s = Sizes(st.n_in, 384, st.keep, st.pairs, st.clusters, st.knn)
    print(f"DeiT-S stage {args.stage + 1}: n {s.n}, c {s.c}, keep {s.keep} (Ka {s.ka}, Kb {s.kb}), L {s.l}, "
          f"r {s.pairs}, M {s.clusters}, k {s.knn}; fp32 tokens\n")
    print("\n".join(table(s)))
    print()
    print("\n".join(ratios(s, {ORIN.name: (3.0, 5.0, 10.0), H100.name: (2.0, 3.0)},
                            {ORIN.name: 1.5, H100.name: 1.0})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
