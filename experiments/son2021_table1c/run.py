"""Son et al. 2021 Table 1(c): lesion segmentation F1/precision/recall vs the share of synthetic images.

    python experiments/son2021_table1c/run.py --tiny --out /tmp/son_tiny      # phantom, about a minute on CPU
    python experiments/son2021_table1c/run.py --real REAL --synthetic SYN --out runs/son2021
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_data import load_config, phantom_pair, retina  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="Phantom data at 32 px, 1 epoch (smoke run).")
    parser.add_argument("--real", type=Path, help="Real canonical set with ex/he masks (full run).")
    parser.add_argument("--synthetic", type=Path, help="Generated canonical set (full run).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    config = load_config(HERE)
    settings = config["tiny" if args.tiny else "full"]
    if args.tiny:
        real, synthetic = phantom_pair(args.out, settings["n_real"], settings["n_synthetic"], settings["size"])
    elif args.real is None or args.synthetic is None:
        parser.error("a full run needs --real and --synthetic (or pass --tiny)")
    else:
        real, synthetic = args.real, args.synthetic
    retina("bench", "segment", "--real", real, "--synthetic", synthetic, "--ratios", settings["ratios"],
           "--model", settings["model"], "--epochs", settings["epochs"], "--res", settings["res"],
           "--width", settings["width"], "--channels", settings["channels"], "--batch-size", settings["batch_size"],
           "--device", args.device, "--out", args.out / "segment")


if __name__ == "__main__":
    main()
