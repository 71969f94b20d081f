"""The machine's matmul peak (fp32 and bf16), the denominator of every achieved-GFLOP/s fraction."""

from __future__ import annotations

import time

import torch


def matmul_gflops(dtype: torch.dtype, n: int = 4096, repeats: int = 3, device: str = "cpu") -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    timings.sort()
    return 2 * n**3 / timings[len(timings) // 2] / 1e9
