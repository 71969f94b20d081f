"""SkrGAN Table 2: vessel U-Net with and without pre-training on synthetic images and their vessel masks.

    python experiments/skrgan_table2/run.py --tiny --out /tmp/skrgan_tiny
    python experiments/skrgan_table2/run.py --real DRIVE_CANONICAL --synthetic SYN --out runs/skrgan
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_data import load_config, parse_experiment_args, real_and_synthetic, retina  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser, args = parse_experiment_args(__doc__, argv, {"--real": None, "--synthetic": None})
    s = load_config(HERE)["tiny" if args.tiny else "full"]
    real, synthetic = real_and_synthetic(parser, args, s)
    retina("bench", "vessels", "--real", real, "--synthetic", synthetic, "--res", s["res"], "--width", s["width"],
           "--pretrain-epochs", s["pretrain_epochs"], "--finetune-epochs", s["finetune_epochs"],
           "--batch-size", s["batch_size"], "--device", args.device, "--out", args.out / "vessels")


if __name__ == "__main__":
    main()
