"""Parameters, GFLOP per image and CPU throughput of Lesion-Net (paper and FCN variants) and SkrGAN's two
generators at their papers' configurations (issue 13). No public reference code is run here: neither paper's
code is available offline. Run by hand:

    python benchmarks/skrgan_lesionnet.py --res 256 --batch 2 --repeats 3 --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _models(res: int) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    from retina.bench.lesionnet import LesionNet, LesionNetConfig, LesionNetFCN
    from retina.layout.sketch_gan import SketchGAN, SketchGANConfig
    from retina.render.skrgan import ColourRenderConfig, ColourRenderMapping

    image = torch.randn(1, 3, res, res)
    sketch = (torch.rand(1, 1, res, res) > 0.9).float()
    gs = SketchGAN(SketchGANConfig(res=res)).generator  # PGGAN: z 512, 8192 / 2^stage capped at 512
    gp = ColourRenderMapping(ColourRenderConfig(res=res))  # U-Net 64
    return {
        "lesionnet-16s (copy-and-merge)": (LesionNet(LesionNetConfig(out_channels=5, cut=16)), image),
        "lesionnet-8s (copy-and-merge)": (LesionNet(LesionNetConfig(out_channels=5, cut=8)), image),
        "lesionnet-fcn-16s (added scores)": (LesionNetFCN(LesionNetConfig(out_channels=5, cut=16)), image),
        "skrgan G_S sketch generator": (gs, torch.randn(1, 512)),
        "skrgan G_P colour renderer": (_Render(gp), sketch),
    }


class _Render(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model.generator

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.model(sketch))


def measure(model: torch.nn.Module, example: torch.Tensor, batch: int, repeats: int, bf16: bool) -> dict:
    model = model.eval()
    inputs = example.repeat(batch, *([1] * (example.ndim - 1)))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.inference_mode(), autocast:
        counter = FlopCounterMode(display=False)
        with counter:
            model(example)
        model(inputs)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(inputs)
        seconds = (time.perf_counter() - start) / repeats
    return {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "gflop_per_img": round(counter.get_total_flops() / 1e9, 2), "img_per_s": round(batch / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, (model, example) in _models(args.res).items():
        for bf16 in (False, True):
            row = {"item": name, "res": args.res, "batch": args.batch, "dtype": "bf16" if bf16 else "fp32",
                   **measure(model, example, args.batch, args.repeats, bf16)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
