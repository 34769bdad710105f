"""FEDN's temporal part on T = 512 ... 16384 frames: time and peak memory, sliding-window
attention next to the same model with full T x T attention.

Each (variant, length) runs in a fresh process so the peak resident set (Linux VmHWM, reset
just before the forward pass) is that run's own. Run as ``visionattn benchmark-fedn-scaling``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path
from typing import Dict, List

import torch

from ..utils import atomic_write_json, atomic_write_text
from .peak_memory import PeakRSS


def _probe(attention: str, length: int, dim: int, embed: int, repeats: int, queue) -> None:
    from ..models.fedn import FEDN, FEDNConfig

    torch.manual_seed(0)
    model = FEDN(FEDNConfig(feature_dim=dim, embed_dim=embed, attention=attention)).eval()
    x = torch.randn(1, length, dim)
    mask = torch.ones(1, length, dtype=torch.bool)
    with torch.inference_mode():
        model.temporal(x[:, :256], mask[:, :256])  # warm-up outside the measurement
        times = []
        with PeakRSS() as peak:
            for _ in range(repeats):
                start = time.perf_counter()
                model.temporal(x, mask)
                times.append(time.perf_counter() - start)
    queue.put({"ms": 1e3 * sorted(times)[len(times) // 2], "peak_mib": peak.mib})


def measure(attention: str, length: int, args) -> Dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_probe, args=(attention, length, args.feature_dim, args.embed_dim, args.repeats, queue))
    proc.start()
    proc.join(args.timeout)
    if proc.is_alive():
        proc.kill()
        return {"ms": float("nan"), "peak_mib": float("nan"), "note": f"over {args.timeout}s"}
    if proc.exitcode != 0:
        return {"ms": float("nan"), "peak_mib": float("nan"), "note": f"failed (exit {proc.exitcode}, out of memory?)"}
    return queue.get()


def run(args: argparse.Namespace) -> dict:
    rows: List[dict] = []
    for length in args.lengths:
        row = {"frames": length}
        for attention in ("window", "full"):
            if attention == "full" and length > args.full_max:
                row[attention] = {"note": f"skipped above {args.full_max} frames"}
                continue
            row[attention] = measure(attention, length, args)
        rows.append(row)
        print(row, flush=True)
    by_len = {r["frames"]: r["window"]["peak_mib"] for r in rows}
    ratio = by_len.get(16384, float("nan")) / by_len.get(4096, float("nan")) if 4096 in by_len else float("nan")
    result = {"settings": vars(args) | {"lengths": list(args.lengths)}, "rows": rows,
              "window_peak_ratio_16384_over_4096": ratio}
    lines = ["| frames | window ms | window peak MiB | full ms | full peak MiB |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        f = r["full"]
        lines.append(f"| {r['frames']} | {r['window']['ms']:.0f} | {r['window']['peak_mib']:.0f} | "
                     f"{f.get('ms', float('nan')):.0f} | {f.get('peak_mib', float('nan')):.0f} |")
    lines.append(f"\nwindow attention peak memory, 16384 / 4096 frames = {ratio:.2f} (target <= 4.5)")
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    atomic_write_json(out / "fedn_scaling.json", {k: v for k, v in result.items() if k != "settings"})
    atomic_write_text(out / "fedn_scaling.md", table)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/benchmark")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--feature-dim", type=int, default=512)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-max", type=int, default=8192, help="longest input for full T x T attention")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per measurement")
