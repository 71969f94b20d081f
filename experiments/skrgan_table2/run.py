"""SkrGAN Table 2: vessel U-Net with and without pre-training on synthetic images and their vessel masks.

    python experiments/skrgan_table2/run.py --tiny --out /tmp/skrgan_tiny
    python experiments/skrgan_table2/run.py --real DRIVE_CANONICAL --synthetic SYN --out runs/skrgan
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
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--real", type=Path)
    parser.add_argument("--synthetic", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    s = load_config(HERE)["tiny" if args.tiny else "full"]
    if args.tiny:
        real, synthetic = phantom_pair(args.out, s["n_real"], s["n_synthetic"], s["size"])
    elif args.real is None or args.synthetic is None:
        parser.error("a full run needs --real and --synthetic (or pass --tiny)")
    else:
        real, synthetic = args.real, args.synthetic
    retina("bench", "vessels", "--real", real, "--synthetic", synthetic, "--res", s["res"], "--width", s["width"],
           "--pretrain-epochs", s["pretrain_epochs"], "--finetune-epochs", s["finetune_epochs"],
           "--batch-size", s["batch_size"], "--device", args.device, "--out", args.out / "vessels")


if __name__ == "__main__":
    main()
