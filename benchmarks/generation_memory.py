"""Peak memory of ``retina generate`` against the number of images: it must stay flat (issue 4, issue 6).

Each N runs in a fresh Python process (so one run's peak cannot hide another's) that streams a generation
into a temporary folder and reports its own peak resident set size (``getrusage``). Run by hand::

    python benchmarks/generation_memory.py --sizes 100,2000 --res 64
    python benchmarks/generation_memory.py --sizes 100,10000 --res 64 --render-ckpt RUN/last.safetensors
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from retina.render.generate import generate_dataset
args = json.loads(sys.argv[1])
start = time.perf_counter()
generate_dataset(args["out"], args["n"], layout_ckpt=args["layout"], render_ckpt=args["render"], res=args["res"],
                 batch=args["batch"], device=args["device"], show_progress=False)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - start}))
"""


def measure(n: int, res: int, batch: int, layout: str | None, render: str | None, device: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        arguments = {"out": str(Path(folder) / "gen"), "n": n, "res": res, "batch": batch, "layout": layout,
                     "render": render, "device": device}
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(arguments)], capture_output=True, text=True,
                              check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,2000", help="comma-separated numbers of images")
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--layout-ckpt", default=None, help="default: the procedural layout prior")
    parser.add_argument("--render-ckpt", default=None, help="default: the procedural renderer")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    print(f"{'N':>7} {'peak RSS MiB':>13} {'seconds':>8} {'img/s':>7}")
    for n in sizes:
        result = measure(n, args.res, args.batch, args.layout_ckpt, args.render_ckpt, args.device)
        results.append(result)
        print(f"{n:>7} {result['peak_rss_mib']:>13.1f} {result['seconds']:>8.1f} {n / result['seconds']:>7.1f}",
              flush=True)
    growth = results[-1]["peak_rss_mib"] - results[0]["peak_rss_mib"]
    models = f"layout {args.layout_ckpt or 'procedural'}, renderer {args.render_ckpt or 'procedural'}"
    print(f"peak RSS grows {growth:+.1f} MiB from N={sizes[0]} to N={sizes[-1]} ({models}, {args.res}px, "
          f"batch {args.batch})")


if __name__ == "__main__":
    main()
