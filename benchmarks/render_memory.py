"""Peak memory (and time) of rendering one batch at high resolution on this machine (issue 4, "Memory").

Each (model, resolution) runs in a fresh Python process that reports its own peak resident set size, so the
figures do not leak into each other. ``drgan``/``spade`` are UNTRAINED generators at the default width (the
memory of a forward pass does not depend on the weights' values); ``procedural`` is the preview renderer.
Run by hand::

    python benchmarks/render_memory.py --models procedural,drgan --sizes 512,1024 --batch 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import torch
from retina.common.schema import NUM_CHANNELS
from retina.phantom.layout import sample_layout
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
res, batch, model = args["res"], args["batch"], args["model"]
masks = torch.from_numpy(sample_layout(3, res, seed=0).masks).float()[None].repeat(batch, 1, 1, 1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with torch.inference_mode():
    if model == "procedural":
        from retina.render.procedural import ProceduralRenderer
        render = lambda: ProceduralRenderer().render(masks, torch.full((batch,), 3), list(range(batch)))
    elif model == "drgan":
        from retina.render.drgan import DRGANGenerator
        net = DRGANGenerator(NUM_CHANNELS, width=args["width"]).eval()
        render = lambda: net(masks)[0]
    else:
        from retina.render.spade import SPADEGenerator
        net = SPADEGenerator(NUM_CHANNELS, res, width=args["width"]).eval()
        render = lambda: net(masks)[0]
    start = time.perf_counter()
    image = render()
    seconds = time.perf_counter() - start
assert image.shape == (batch, 3, res, res), image.shape
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_mib": before, "seconds": seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="procedural,drgan")
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--width", type=int, default=64, help="generator width (RenderConfig default: 64)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{'model':<22} {'res':>5} {'batch':>5} {'peak RSS MiB':>13} {'of which masks+import':>22} {'s':>7}")
    for model in args.models.split(","):
        for res in (int(s) for s in args.sizes.split(",")):
            child = {"model": model, "res": res, "batch": args.batch, "width": args.width, "threads": args.threads}
            done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(child)], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{model:<22} {res:>5} {args.batch:>5} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            label = model if model == "procedural" else f"{model}(untrained,w{args.width})"
            print(f"{label:<22} {res:>5} {args.batch:>5} {result['peak_rss_mib']:>13.0f} "
                  f"{result['before_mib']:>22.0f} {result['seconds']:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
