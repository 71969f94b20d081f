"""SkrGAN Table 2: vessel U-Net with and without pre-training on synthetic images and their sketches.

    python experiments/skrgan_table2/run.py --tiny --out /tmp/skrgan_tiny
    python experiments/skrgan_table2/run.py --real DRIVE_CANONICAL --out runs/skrgan            # trains SkrGAN
    python experiments/skrgan_table2/run.py --real DRIVE_CANONICAL --synthetic SYN --out runs/skrgan
    python experiments/skrgan_table2/run.py --real DRIVE_CANONICAL --short --out runs/skrgan    # CPU minutes

Without --synthetic, SkrGAN is trained on the real set's split=train photographs (`retina layout
train-sketch`, `retina render train-sketch`) and generates the synthetic set (`retina generate --vessels
sketch`): images with their generated sketches as vessel labels, as in the paper.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_data import load_config, parse_experiment_args, real_and_synthetic, retina  # noqa: E402


def train_skrgan(real: Path, s: dict, out: Path, device: str) -> Path:
    """SkrGAN's two stages on ``real``'s split=train photographs, then ``s['n_synthetic']`` generated pairs."""
    sketch, render, synthetic = out / "skrgan_sketch", out / "skrgan_render", out / "synthetic"
    if not (sketch / "last.safetensors").exists():
        retina("layout", "train-sketch", "--data", real, "--out", sketch, "--res", s["res"], *s["sketch_train"],
               "--device", device, "--quiet")
    if not (render / "last.safetensors").exists():
        retina("render", "train-sketch", "--data", real, "--out", render, "--res", s["res"], *s["render_train"],
               "--device", device, "--quiet")
    if not synthetic.exists():
        retina("generate", "--vessels", "sketch", "--vessels-checkpoint", sketch, "--renderer", render,
               "--n", s["n_synthetic"], "--out", synthetic, "--device", device)
    return synthetic


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    short = "--short" in argv  # the "short" settings of config.json (a few CPU minutes), listed in the usage above
    argv = [a for a in argv if a != "--short"]
    parser, args = parse_experiment_args(__doc__, argv, {"--real": None, "--synthetic": None})
    s = load_config(HERE)["tiny" if args.tiny else "short" if short else "full"]
    if args.tiny or args.synthetic is not None:
        real, synthetic = real_and_synthetic(parser, args, s)
    elif args.real is None:
        parser.error("a full run needs --real (and optionally --synthetic), or pass --tiny")
    else:
        real, synthetic = args.real, train_skrgan(args.real, s, args.out, args.device)
    retina("bench", "vessels", "--real", real, "--synthetic", synthetic, "--res", s["res"], "--width", s["width"],
           "--pretrain-epochs", s["pretrain_epochs"], "--finetune-epochs", s["finetune_epochs"],
           "--batch", s["batch_size"], "--device", args.device, "--out", args.out / "vessels")


if __name__ == "__main__":
    main()
