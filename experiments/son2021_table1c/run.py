"""Son et al. 2021 Table 1(c): lesion segmentation F1/precision/recall vs the share of synthetic images.

    python experiments/son2021_table1c/run.py --tiny --out /tmp/son_tiny      # phantom, about a minute on CPU
    python experiments/son2021_table1c/run.py --real REAL --synthetic SYN --out runs/son2021
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_data import load_config, parse_experiment_args, real_and_synthetic, retina  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser, args = parse_experiment_args(__doc__, argv, {
        "--real": "Real canonical set with ex/he masks (full run).",
        "--synthetic": "Generated canonical set (full run).",
    }, tiny_help="Phantom data at 32 px, 1 epoch (smoke run).")
    config = load_config(HERE)
    settings = config["tiny" if args.tiny else "full"]
    real, synthetic = real_and_synthetic(parser, args, settings)
    retina("bench", "segment", "--real", real, "--synthetic", synthetic, "--ratios", settings["ratios"],
           "--model", settings["model"], "--epochs", settings["epochs"], "--res", settings["res"],
           "--width", settings["width"], "--channels", settings["channels"], "--batch", settings["batch_size"],
           "--device", args.device, "--out", args.out / "segment")


if __name__ == "__main__":
    main()
