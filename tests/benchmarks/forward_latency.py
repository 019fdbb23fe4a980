"""Forward latency of PSPNet-50 beside the machine's fp32 matmul rate, measured in one run.

    python tests/benchmarks/forward_latency.py                # CPU, 473x473, batch 1
    python tests/benchmarks/forward_latency.py --device cuda  # + bf16 channels_last 512x512

Prints FLOPs (torch.utils.flop_counter), latency, achieved GFLOP/s and the ratio to the
matmul rate. Target on CPU: >= 80% of the matmul rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.config import ModelConfig
from core.model import PSPNet


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return times


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    """Achieved FLOP/s of an n x n matmul (the machine's practical peak for this dtype)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = min(timed(lambda: a @ b, device, repeats, 2))
    return 2 * n**3 / t


def count_flops(model: PSPNet, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def run(device: torch.device, size: int, dtype: torch.dtype, channels_last: bool, repeats: int) -> dict:
    model = PSPNet(ModelConfig(num_classes=150)).eval().to(device)
    x = torch.randn(1, 3, size, size, device=device)
    flops = count_flops(model, x)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def forward():
        with torch.inference_mode(), autocast:
            model(x)

    n = 4096 if device.type == "cuda" else 2048
    rate_before = matmul_rate(device, dtype, n, 5)
    times = timed(forward, device, repeats, warmup=2)
    best, median = min(times), statistics.median(times)
    rate = max(rate_before, matmul_rate(device, dtype, n, 5))  # best of before/after: less noise
    return {
        "device": str(device), "size": size, "dtype": str(dtype).replace("torch.", ""),
        "channels_last": channels_last, "threads": torch.get_num_threads(),
        "gflop": flops / 1e9, "best_s": best, "median_s": median,
        "achieved_gflops": flops / best / 1e9, "matmul_gflops": rate / 1e9,
        "ratio_to_matmul": flops / best / rate,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    results = [run(torch.device("cpu"), 473, torch.float32, False, args.repeats)]
    if device.type == "cpu":
        results.append(run(device, 473, torch.float32, True, args.repeats))
    if device.type == "cuda":
        results.append(run(device, 512, torch.float32, False, 20))
        results.append(run(device, 512, torch.bfloat16, True, 50))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print("| device | input | dtype | channels_last | GFLOP | best ms | median ms | GFLOP/s | matmul GFLOP/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['device']} ({r['threads']} threads) | {r['size']}x{r['size']} | {r['dtype']} | {r['channels_last']} | "
              f"{r['gflop']:.1f} | {r['best_s'] * 1e3:.1f} | {r['median_s'] * 1e3:.1f} | {r['achieved_gflops']:.1f} | "
              f"{r['matmul_gflops']:.1f} | {r['ratio_to_matmul']:.0%} |")


if __name__ == "__main__":
    main()
