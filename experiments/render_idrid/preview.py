"""Paired MS-SSIM (each rendered image vs the real photograph of the same mask set) and the preview grid.

    python experiments/render_idrid/preview.py --real HELDOUT --row trained=DIR --row untrained=DIR \
        --row procedural=DIR --out experiments/render_idrid/preview.png --json paired.json

Grid rows: the real images, then one row per --row folder (same names, in the real set's order).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from retina.common.canonical import CanonicalDataset
from retina.common.imageio import write_png
from retina.eval.msssim import ms_ssim, variant_name


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--row", action="append", default=[], help="label=folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--gap", type=int, default=2)
    parser.add_argument("--cols", type=int, default=0, help="Grid columns (first N names; 0 = all). Metrics use all.")
    parser.add_argument("--tile", type=int, default=0, help="Tile side in the grid (0 = image size).")
    args = parser.parse_args()
    real = CanonicalDataset(args.real)
    names = real.names
    rows = [[real.load_image(n) for n in names]]
    name = variant_name(min(rows[0][0].shape[:2]))  # MS-SSIM-4scale at 128 px: five scales need > 160 px
    report = {"real": str(args.real), "names": names, "paired_msssim": {}, "msssim_variant": name}
    for spec in args.row:
        label, folder = spec.split("=", 1)
        fake = CanonicalDataset(folder)
        images = [fake.load_image(n) for n in names]
        rows.append(images)
        values = ms_ssim(to_tensor(images), to_tensor(rows[0]))
        report["paired_msssim"][label] = {"mean": float(values.mean()), "std": float(values.std())}
        print(f"{label}: paired {name} vs real {float(values.mean()):.4f} +- {float(values.std()):.4f}")
    columns = args.cols or len(names)
    tile = args.tile or rows[0][0].shape[0]
    rows = [[cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA) for image in images[:columns]]
            for images in rows]
    names = names[:columns]
    size, gap = tile, args.gap
    grid = np.full((len(rows) * (size + gap) - gap, len(names) * (size + gap) - gap, 3), 255, np.uint8)
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            grid[r * (size + gap): r * (size + gap) + size, c * (size + gap): c * (size + gap) + size] = image
    write_png(args.out, grid)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
