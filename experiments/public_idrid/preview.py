"""The recipe's preview grid and paired MS-SSIM.

    python experiments/public_idrid/preview.py --runs RUNS --out preview/preview.png

One row per test image: the test photograph | the learned render of its masks | the procedural render of the same
masks | a learned chain sample (noise -> layout -> render, no real mask) of the same grade. Paired MS-SSIM: each
render against the photograph of the same mask set (higher = closer), written to ``paired.json`` beside the grid.
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


def paired(real: list[np.ndarray], fake: list[np.ndarray]) -> dict[str, float]:
    values = ms_ssim(to_tensor(fake), to_tensor(real))
    return {"mean": float(values.mean()), "sd": float(values.std()), "n": len(real)}


def grid(rows: list[list[np.ndarray]], tile: int, gap: int = 2) -> np.ndarray:
    height = len(rows) * (tile + gap) - gap
    width = max(len(r) for r in rows) * (tile + gap) - gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            small = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
            canvas[r * (tile + gap): r * (tile + gap) + tile, c * (tile + gap): c * (tile + gap) + tile] = small
    return canvas


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="The recipe's runs folder.")
    parser.add_argument("--out", type=Path, required=True, help="Grid PNG (relative paths: inside --runs).")
    parser.add_argument("--rows", type=int, default=6, help="Test images shown (metrics use all).")
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args(argv)
    runs = args.runs
    out = args.out if args.out.is_absolute() else runs / args.out
    real_set = CanonicalDataset(runs / "idrid_256")
    test = [s for s in real_set.samples if s.split == "test"]
    learned = CanonicalDataset(runs / "render_test_learned")
    procedural = CanonicalDataset(runs / "render_test_procedural")
    chain = CanonicalDataset(runs / "chain_learned")
    names = [s.name for s in test]
    real = [real_set.load_image(n) for n in names]
    report = {"split": "test", "names": names, "metric": variant_name(real[0].shape[0]),
              "paired": {"learned": paired(real, [learned.load_image(n) for n in names]),
                         "procedural": paired(real, [procedural.load_image(n) for n in names])}}
    by_grade: dict[int | None, list[str]] = {}
    for sample in chain.samples:
        by_grade.setdefault(sample.grade, []).append(sample.name)
    rows = []
    for i, sample in enumerate(test[:args.rows]):
        same = by_grade.get(sample.grade) or chain.names
        rows.append([real[i], learned.load_image(sample.name), procedural.load_image(sample.name),
                     chain.load_image(same[i % len(same)])])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(out, grid(rows, args.tile))
    (out.parent / "paired.json").write_text(json.dumps(report, indent=2) + "\n")
    for label, value in report["paired"].items():
        print(f"paired {report['metric']} {label}: {value['mean']:.4f} ± {value['sd']:.4f} (n={value['n']})")
    print(f"preview: {len(rows)} rows (test photograph | learned | procedural | chain, same grade) -> {out}")


if __name__ == "__main__":
    main()
