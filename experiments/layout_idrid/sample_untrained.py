"""Sample layouts from an UNTRAINED layout GAN with the same generator config as a trained run (the baseline
of the IDRiD layout table). Weights are random (torch seed 0); the model name in labels.csv says "untrained".

    python experiments/layout_idrid/sample_untrained.py RUN --grade 2,3 --n 55 --res 128 --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from retina.common.checkpoint import Checkpoint
from retina.common.errors import parse_grades
from retina.common.seeding import sample_seed
from retina.layout.config import GeneratorConfig
from retina.layout.model import GanLayout, build_networks
from retina.layout.post_process import clean_layout
from retina.layout.sample import write_layouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="trained run folder or checkpoint whose generator config to copy")
    parser.add_argument("--grade", default="2,3")
    parser.add_argument("--n", type=int, default=55)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--raw", action="store_true", help="no post-process (single optic disc, solid field of view)")
    args = parser.parse_args()
    config = GeneratorConfig.from_saved(Checkpoint(args.run).expect("layout").config["generator"])
    torch.manual_seed(0)
    generator, _ = build_networks(config)
    model = GanLayout(generator, config, f"untrained-{config.arch}", torch.device("cpu"))
    model.name = f"{config.arch}-untrained"
    grades = parse_grades(args.grade, args.n)
    seeds = [sample_seed(args.seed, i) for i in range(args.n)]
    write_layouts(model, grades, seeds, args.res, args.out,
                  post_process=None if args.raw else clean_layout)


if __name__ == "__main__":
    main()
