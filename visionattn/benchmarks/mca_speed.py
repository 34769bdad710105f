"""ResNet-50 with no attention, SE, ECA, MCA-E, MCA-S and a naive MCA-S, measured side by side.

Every model is built through timm. The registered MCA models scale the block's input in
place at inference; an extra MCA-S row that writes a new tensor, as SE, ECA and the naive
block do, shows how much of the difference that accounts for.

Latencies are medians over interleaved repeats (model A, B, C, ..., then again in a rotated
order), so drift on a noisy machine and order effects hit every model alike. Each timed call
follows an untimed call of the same model, so it runs in the memory-allocator state that
model leaves, as it would on its own. The ratios, not the absolute milliseconds, are the
result. Run it as ``visionattn benchmark``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import statistics
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..layers import MomentChannelAttention, fused_moments
from ..utils import atomic_write_json, atomic_write_text
from .peak_memory import PeakRSS

BASELINE = "resnet50"
ECA = "resnet50+ECA"
MCA_S = "resnet50+MCA-S"
MCA_S_NOT_IN_PLACE = "resnet50+MCA-S (not in place)"
NAIVE = "resnet50+MCA-S (naive)"
TARGETS = {  # (numerator, denominator): maximum ratio of inference latencies
    (MCA_S, ECA): 1.02,
    (MCA_S, NAIVE): 0.85,
}


class NaiveMomentAttention(nn.Module):
    """MCA-S written the way the formula reads: each moment its own pass over x.

    The benchmark's reference point for what the fused moment pass saves. Same
    parameters and output as ``MomentChannelAttention(variant="S")``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.cmc = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        mean = x.mean((2, 3))
        std = (x - mean[..., None, None]).pow(2).mean((2, 3)).sqrt()
        skew = (x - mean[..., None, None]).pow(3).mean((2, 3)) / (std.pow(3) + self.eps)
        gate = torch.sigmoid(self.cmc(torch.stack((mean, skew), dim=1)))
        return x * gate.view(b, c, 1, 1)


def model_specs() -> Dict[str, Callable[[], nn.Module]]:
    import timm

    import visionattn  # noqa: F401  (registers the MCA models)

    return {
        BASELINE: lambda: timm.create_model("resnet50"),
        "resnet50+SE": lambda: timm.create_model("seresnet50"),
        ECA: lambda: timm.create_model("resnet50", block_args=dict(attn_layer="eca")),
        "resnet50+MCA-E": lambda: timm.create_model("resnet50_mca_e"),
        MCA_S: lambda: timm.create_model("resnet50_mca_s"),
        MCA_S_NOT_IN_PLACE: lambda: timm.create_model(
            "resnet50_mca_s", block_args=dict(attn_layer=partial(MomentChannelAttention, variant="S"))),
        NAIVE: lambda: timm.create_model("resnet50", block_args=dict(attn_layer=NaiveMomentAttention)),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved_medians(steps: Dict[str, Callable[[], None]], repeats: int, warmup: int, device) -> Dict[str, float]:
    for step in steps.values():
        for _ in range(warmup):
            step()
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        # rotate the order each round so no model always runs right after the same neighbour
        for name in names[r % len(names):] + names[:r % len(names)]:
            step = steps[name]
            # An untimed call first, so each model is timed in the allocator state it leaves
            # itself (as when it runs on its own), not in the one its predecessor left.
            step()
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def _autocast(device: torch.device, amp: bool):
    if not amp:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def inference_latency(models, batch_size, img_size, repeats, warmup, device, amp=False) -> Dict[str, float]:
    x = torch.randn(batch_size, 3, img_size, img_size, device=device)

    def make_step(model):
        def step():
            with torch.inference_mode(), _autocast(device, amp):
                model(x)
        return step

    for m in models.values():
        m.eval()
    return _interleaved_medians({n: make_step(m) for n, m in models.items()}, repeats, warmup, device)


def _train_step_fn(model: nn.Module, batch_size: int, img_size: int, device, amp: bool = False):
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 3, img_size, img_size, device=device)
    y = torch.randint(0, 1000, (batch_size,), device=device)

    def step():
        with _autocast(device, amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def train_step_time(models, batch_size, img_size, repeats, warmup, device, amp=False) -> Dict[str, float]:
    steps = {n: _train_step_fn(m, batch_size, img_size, device, amp) for n, m in models.items()}
    return _interleaved_medians(steps, repeats, warmup, device)


def _cpu_peak_probe(name: str, batch_size: int, img_size: int, queue) -> None:
    model = model_specs()[name]()
    step = _train_step_fn(model, batch_size, img_size, torch.device("cpu"))
    with PeakRSS() as peak:
        step()  # the first step: activations, gradients and the momentum buffers it creates
    queue.put(peak.mib)


def saved_activation_mib(model: nn.Module, batch_size: int, img_size: int) -> float:
    """Bytes autograd keeps for backward in one training forward (unique storages, parameters
    excluded): the deterministic part of a training step's peak memory."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    model.train()
    x = torch.randn(batch_size, 3, img_size, img_size)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return sum(seen.values()) / 2**20


def train_step_peak_memory(names, batch_size, img_size, device) -> Dict[str, float]:
    """Peak memory of one training step above the model and optimizer state, in MiB.

    CPU (Linux): growth of the peak resident set (VmHWM, reset just before the step) in a
    fresh process per model, so one model's freed memory cannot hide another's.
    CUDA: ``torch.cuda.max_memory_allocated`` around the step.
    """
    out: Dict[str, float] = {}
    if device.type == "cuda":
        specs = model_specs()
        for name in names:
            model = specs[name]().to(device)
            step = _train_step_fn(model, batch_size, img_size, device)
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            step()
            torch.cuda.synchronize(device)
            out[name] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            del model, step
            torch.cuda.empty_cache()
        return out
    ctx = mp.get_context("spawn")
    for name in names:
        queue = ctx.Queue()
        proc = ctx.Process(target=_cpu_peak_probe, args=(name, batch_size, img_size, queue))
        proc.start()
        out[name] = queue.get()
        proc.join()
    return out


def gflops(models: Dict[str, nn.Module], img_size: int) -> Dict[str, float]:
    """Forward GFLOPs for one image from torch's FlopCounterMode (1 multiply-add = 2 FLOPs;
    it counts convolutions and matmuls, not elementwise ops such as the moment pooling)."""
    out = {}
    x = torch.randn(1, 3, img_size, img_size)
    for name, model in models.items():
        model.eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        out[name] = counter.get_total_flops() / 1e9
    return out


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    specs = model_specs()
    fused = fused_moments.load() is not None
    models = {name: build() for name, build in specs.items()}
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    print(f"visionattn benchmark: {len(models)} ResNet-50 variants, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, fused moment kernel: {'yes' if fused else 'no'}", flush=True)
    flops = gflops(models, args.img_size)
    saved = {n: saved_activation_mib(m, args.train_batch_size, args.train_img_size) for n, m in models.items()}
    cpu = torch.device("cpu")
    latency: Dict[int, Dict[str, float]] = {}
    for bs in args.batch_sizes:
        print(f"  CPU inference: batch {bs}, {args.img_size}px, {args.repeats} interleaved repeats", flush=True)
        latency[bs] = inference_latency(models, bs, args.img_size, args.repeats, 2, cpu)
    print(f"  CPU training step: batch {args.train_batch_size}, {args.train_img_size}px, "
          f"{args.train_repeats} interleaved repeats", flush=True)
    train = train_step_time(models, args.train_batch_size, args.train_img_size, args.train_repeats, 1, cpu)
    print("  peak memory of a training step (one fresh process per model)", flush=True)
    del models
    memory = train_step_peak_memory(list(specs), args.train_batch_size, args.train_img_size, cpu)

    rows = []
    for name in specs:
        rows.append({
            "model": name,
            "params": params[name],
            "gflops": round(flops[name], 3),
            "cpu_latency_ms": {bs: round(lat[name], 2) for bs, lat in latency.items()},
            "cpu_latency_ratio": {bs: round(lat[name] / lat[BASELINE], 4) for bs, lat in latency.items()},
            "cpu_train_step_ms": round(train[name], 1),
            "cpu_train_step_ratio": round(train[name] / train[BASELINE], 4),
            "cpu_train_peak_mib": round(memory[name], 1),
            "saved_activations_mib": round(saved[name], 1),
        })
    result = {
        "settings": {
            "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "fused_moment_kernel": fused,
            "batch_sizes": list(args.batch_sizes), "img_size": args.img_size, "repeats": args.repeats,
            "train_batch_size": args.train_batch_size, "train_img_size": args.train_img_size,
            "train_repeats": args.train_repeats,
        },
        "rows": rows,
        # `floor`: the ratio an attention block that cost nothing would get (plain ResNet-50 over
        # the denominator). Where it is above the limit, no implementation can meet the target.
        "targets": [
            {"ratio": f"{a} / {b}", "batch_size": bs, "value": round(lat[a] / lat[b], 4), "max": limit,
             "met": lat[a] / lat[b] <= limit, "floor": round(lat[BASELINE] / lat[b], 4)}
            for bs, lat in latency.items() for (a, b), limit in TARGETS.items()
        ],
    }
    if torch.cuda.is_available() and not args.no_cuda:
        result["cuda"] = _cuda_figures(specs, args)
    _report(result, Path(args.out))
    return result


def _cuda_figures(specs, args) -> dict:
    dev = torch.device("cuda")
    models = {n: build().to(dev) for n, build in specs.items()}
    out = {"device": torch.cuda.get_device_name(dev)}
    for amp in (False, True):
        key = "amp" if amp else "fp32"
        lat = inference_latency(models, args.cuda_batch_size, args.img_size, args.repeats, 5, dev, amp)
        step = train_step_time(models, args.cuda_batch_size, args.img_size, args.train_repeats, 2, dev, amp)
        out[key] = {n: {"latency_ms": round(lat[n], 3), "latency_ratio": round(lat[n] / lat[BASELINE], 4),
                        "train_step_ms": round(step[n], 2), "train_step_ratio": round(step[n] / step[BASELINE], 4)}
                    for n in models}
    del models
    out["train_peak_mib"] = {n: round(v, 1) for n, v in
                             train_step_peak_memory(list(specs), args.cuda_batch_size, args.img_size, dev).items()}
    return out


def markdown_table(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"CPU, {s['threads']} threads, torch {s['torch']}, fused moment kernel: "
        f"{'yes' if s['fused_moment_kernel'] else 'no'}. Inference at {s['img_size']}px, median of "
        f"{s['repeats']} interleaved repeats, batch " + " and ".join(map(str, s["batch_sizes"])) +
        f"; training step (SGD) batch {s['train_batch_size']} at {s['train_img_size']}px; "
        "peak = resident-set growth during the first training step of a fresh process; saved for "
        "backward = unique tensors autograd keeps (deterministic). GFLOPs from torch's FlopCounterMode "
        "(2 per multiply-add; the paper's 4.12 'GFLOPs' are multiply-adds).",
        "",
    ]
    bss = s["batch_sizes"]
    lines.append("| model | params | GFLOPs | " + " | ".join(f"latency b{bs} (ms) | / ResNet-50" for bs in bss)
                 + " | train step / ResNet-50 | train-step peak (MiB) | saved for backward (MiB) |")
    lines.append("|---|---:|---:|" + "---:|---:|" * len(bss) + "---:|---:|---:|")
    for r in result["rows"]:
        lat = " | ".join(f"{r['cpu_latency_ms'][bs]:.1f} | {r['cpu_latency_ratio'][bs]:.3f}" for bs in bss)
        lines.append(f"| {r['model']} | {r['params']:,} | {r['gflops']:.3f} | {lat} | "
                     f"{r['cpu_train_step_ratio']:.3f} | {r['cpu_train_peak_mib']:.0f} | "
                     f"{r['saved_activations_mib']:.0f} |")
    lines.append("")
    for t in result["targets"]:
        verdict = "met" if t["met"] else "NOT met"
        if t["floor"] > t["max"]:
            verdict += f"; out of reach here: a block costing nothing would give {t['floor']:.3f}"
        lines.append(f"- batch {t['batch_size']}: latency {t['ratio']} = {t['value']:.3f} "
                     f"(target <= {t['max']}): {verdict}")
    if "cuda" in result:
        c = result["cuda"]
        lines += ["", f"CUDA ({c['device']}):", "",
                  "| model | fp32 latency ratio | AMP latency ratio | fp32 train ratio | AMP train ratio | peak MiB |",
                  "|---|---:|---:|---:|---:|---:|"]
        for n in c["fp32"]:
            lines.append(f"| {n} | {c['fp32'][n]['latency_ratio']:.3f} | {c['amp'][n]['latency_ratio']:.3f} | "
                         f"{c['fp32'][n]['train_step_ratio']:.3f} | {c['amp'][n]['train_step_ratio']:.3f} | "
                         f"{c['train_peak_mib'][n]:.0f} |")
    return "\n".join(lines) + "\n"


def _report(result: dict, out_dir: Path) -> None:
    table = markdown_table(result)
    print()
    print(table)
    atomic_write_json(out_dir / "mca_benchmark.json", result)
    atomic_write_text(out_dir / "mca_benchmark.md", table)
    print(f"wrote {out_dir / 'mca_benchmark.json'} and {out_dir / 'mca_benchmark.md'}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/benchmark", help="folder for mca_benchmark.json/.md")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16],
                        help="inference batch sizes; each gets its own latency columns and target check")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved inference repeats per model")
    parser.add_argument("--train-batch-size", type=int, default=8)
    parser.add_argument("--train-img-size", type=int, default=160)
    parser.add_argument("--train-repeats", type=int, default=5)
    parser.add_argument("--cuda-batch-size", type=int, default=32)
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA figures even if a GPU is present")
