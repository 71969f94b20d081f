"""DR-GAN Table IV: grading (Tr-Real/Te-Fake, Tr-Real&Fake/Te-Real) with synthetic data from each ablation.

Full run: one renderer per variant is trained with ``retina render train`` and the variant's flags
(config.json ``variants``), its images are rendered from the real masks, and ``retina bench grade`` scores them.
The tiny run does not train renderers (minutes are not enough): the procedural renderer stands in for every
variant, so it checks the plumbing, not the ablation.

    python experiments/drgan_table4/run.py --tiny --out /tmp/drgan4_tiny
    python experiments/drgan_table4/run.py --real EYEPACS_CANONICAL --masks TRAIN_MASKS --out runs/drgan4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_data import has_command, load_config, phantom_pair, retina  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--real", type=Path, help="Real graded canonical set (full run).")
    parser.add_argument("--masks", type=Path, help="Canonical mask sets the renderers draw (full run).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    config = load_config(HERE)
    s = config["tiny" if args.tiny else "full"]
    grade_args = ["--model", s["model"], "--width", s["width"], "--res", s["res"], "--epochs", s["epochs"],
                  "--batch-size", s["batch_size"], "--device", args.device]
    if args.tiny:
        real, synthetic = phantom_pair(args.out, s["n_real"], s["n_synthetic"], s["size"])
        print("tiny: renderer training skipped; the procedural phantom stands in for every DR-GAN variant")
        retina("bench", "grade", "--real", real, "--synthetic", synthetic, *grade_args,
               "--out", args.out / "grade_procedural_stand_in")
        return
    if args.real is None or args.masks is None:
        parser.error("a full run needs --real and --masks (or pass --tiny)")
    if not has_command("render", "train"):
        sys.exit("error: `retina render train` is not in this checkout yet; the full ablation needs it")
    for name, flags in config["variants"].items():
        slug = "".join(c if c.isalnum() else "_" for c in name.lower())
        run = args.out / f"render_{slug}"
        retina("render", "train", "--data", args.real, "--out", run, *s["render_train"], *flags,
               "--device", args.device)
        fake = args.out / f"fake_{slug}"
        retina("render", "--masks", args.masks, "--checkpoint", run / "last.safetensors", "--out", fake,
               "--device", args.device)
        retina("bench", "grade", "--real", args.real, "--synthetic", fake, *grade_args, "--out",
               args.out / f"grade_{slug}")


if __name__ == "__main__":
    main()
