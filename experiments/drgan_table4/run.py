"""DR-GAN Table IV: grading (Tr-Real/Te-Fake, Tr-Real&Fake/Te-Real) with synthetic data from each ablation.

Full run: one renderer per variant is trained with ``retina render train`` and the variant's flags
(config.json ``variants``), its images are rendered from the real masks, and ``retina bench grade`` scores them.
The tiny run does not train renderers (minutes are not enough): the procedural renderer stands in for every
variant, so it checks the plumbing, not the ablation.

    python experiments/drgan_table4/run.py --tiny --out /tmp/drgan4_tiny
    python experiments/drgan_table4/run.py --real EYEPACS_CANONICAL --masks TRAIN_MASKS --out runs/drgan4
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_data import load_config, parse_experiment_args, phantom_pair, rendered_variants, retina  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser, args = parse_experiment_args(__doc__, argv, {
        "--real": "Real graded canonical set (full run).",
        "--masks": "Canonical mask sets the renderers draw (full run).",
    })
    config = load_config(HERE)
    s = config["tiny" if args.tiny else "full"]
    grade_args = ["--model", s["model"], "--width", s["width"], "--res", s["res"], "--epochs", s["epochs"],
                  "--batch", s["batch_size"], "--device", args.device]
    if args.tiny:
        real, synthetic = phantom_pair(args.out, s["n_real"], s["n_synthetic"], s["size"])
        print("tiny: renderer training skipped; the procedural phantom stands in for every DR-GAN variant")
        retina("bench", "grade", "--real", real, "--synthetic", synthetic, *grade_args,
               "--out", args.out / "grade_procedural_stand_in")
        return
    if args.real is None or args.masks is None:
        parser.error("a full run needs --real and --masks (or pass --tiny)")
    for slug, fake in rendered_variants(config, s, args.real, args.masks, args.out, args.device):
        retina("bench", "grade", "--real", args.real, "--synthetic", fake, *grade_args, "--out",
               args.out / f"grade_{slug}")


if __name__ == "__main__":
    main()
