"""Peak memory and time of DR-GAN's SCA modules at the scales where they run, for a given output size.

DR-GAN at width 64 renders ``res`` with G_m at res/2, whose synthesis blocks run SCA at 1/8, 1/4, 1/2 of G_m
with 512, 256, 128 channels (d = 8, 16, 32). Each module runs (batch 1, fp32, inference, both gammas 1 so
both branches count) in a fresh process that reports the growth of its peak RSS over the input it was given,
beside the bound the full (N, N) spatial map would need (4 N^2 bytes) and the FLOPs of the exact attention::

    python benchmarks/sca_memory.py --res 512,1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import torch
sys.path.insert(0, sys.argv[2])
from retina.render.sca import SpatialChannelAttention
channels, size, reduction = json.loads(sys.argv[1])
module = SpatialChannelAttention(channels, reduction).eval()
with torch.no_grad():
    module.gamma_spatial.fill_(1.0)
    module.gamma_channel.fill_(1.0)
x = torch.randn(1, channels, size, size)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
with torch.inference_mode():
    module(x)
seconds = time.perf_counter() - start
print(json.dumps({"added_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before,
                  "seconds": seconds}))
"""


def scales(res: int) -> list[tuple[int, int, int]]:
    """(channels, size, d) of the three SCA modules of a width-64 DR-GAN rendering ``res``."""
    g_m = res // 2
    return [(512, g_m // 8, 8), (256, g_m // 4, 16), (128, g_m // 2, 32)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", default="512,1024")
    parser.add_argument("--timeout", type=float, default=3600)
    options = parser.parse_args()
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    for res in (int(r) for r in options.res.split(",")):
        for channels, size, reduction in scales(res):
            n = size * size
            row = {"res": res, "channels": channels, "size": size, "d": reduction,
                   "full_map_mb": 4 * n * n / 2**20, "gflop": 2 * n * n * (2 * channels) / 1e9}
            try:
                done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([channels, size, reduction]), root],
                                      capture_output=True, text=True, timeout=options.timeout)
                row.update(json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
                           else {"error": (done.stderr.strip().splitlines() or ["?"])[-1]})
            except subprocess.TimeoutExpired:
                row["error"] = f"over {options.timeout:.0f} s"
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
