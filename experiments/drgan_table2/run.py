"""DR-GAN Table II: fidelity (average FID over grades, SWD x 10^3) of renderers trained with each ablation.

Full run: ``retina render train`` per variant (config.json ``variants``), render the real masks, then
``retina eval fidelity --per-grade``. The tiny run skips renderer training and scores the procedural renderer's
images of the real phantom masks against the phantom photographs (plumbing check, not the ablation).

    python experiments/drgan_table2/run.py --tiny --out /tmp/drgan2_tiny
    python experiments/drgan_table2/run.py --real REAL_CANONICAL --out runs/drgan2
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_data import load_config, parse_experiment_args, phantom_pair, rendered_variants, retina  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser, args = parse_experiment_args(
        __doc__, argv, {"--real": "Real canonical set with masks and grades (full run)."})
    config = load_config(HERE)
    s = config["tiny" if args.tiny else "full"]
    if args.tiny:
        real, _ = phantom_pair(args.out, s["n_real"], s["n_synthetic"], s["size"])
        print("tiny: renderer training skipped; the procedural renderer stands in for every DR-GAN variant")
        fake = args.out / "fake_procedural"
        if not fake.exists():
            # Another seed than the phantom's own: the same seed would redraw the very same photographs.
            retina("render", "--masks", real, "--out", fake, "--seed", 1, "--device", args.device)
        retina("eval", "fidelity", "--real", real, "--fake", fake, "--per-grade", "--metrics", s["metrics"],
               "--res", s["res"], "--device", args.device, "--out", args.out / "fidelity_procedural.json")
        return
    if args.real is None:
        parser.error("a full run needs --real (or pass --tiny)")
    for slug, fake in rendered_variants(config, s, args.real, args.real, args.out, args.device):
        retina("eval", "fidelity", "--real", args.real, "--fake", fake, "--per-grade", "--metrics", s["metrics"],
               "--res", s["res"], "--device", args.device, "--out", args.out / f"fidelity_{slug}.json")


if __name__ == "__main__":
    main()
