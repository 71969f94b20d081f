"""Shared by the experiments' ``run.py --tiny``: phantom stand-ins for the real and generated sets, and
running one ``retina`` command in-process (the same code path as the console script)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text("utf-8"))


def phantom_pair(out: Path, n_real: int, n_synthetic: int, size: int) -> tuple[Path, Path]:
    """A 'real' and a 'synthetic' procedural set with different seeds (both synthetic: tiny scale only)."""
    from retina.phantom.dataset import write_phantom

    real, synthetic = out / "data" / "real_phantom", out / "data" / "synthetic_phantom"
    if not real.exists():
        write_phantom(real, n=n_real, size=size, grades=[0, 1, 2, 3, 4], seed=0)
    if not synthetic.exists():
        write_phantom(synthetic, n=n_synthetic, size=size, grades=[0, 1, 2, 3, 4], seed=1)
    return real, synthetic


def retina(*args: object) -> None:
    """Run ``retina ARGS``; a user error exits with the CLI's one-line message."""
    from retina.cli import main

    argv = [str(a) for a in args]
    print("$ retina " + " ".join(argv), flush=True)
    main(argv)


def has_command(*path: str) -> bool:
    """Whether ``retina PATH...`` exists yet (the render trainer is written by another part of the project)."""
    import click
    import typer

    from retina.cli import app

    command = typer.main.get_command(app)
    context = click.Context(command)
    for name in path:
        if not isinstance(command, click.Group):
            return False
        command = command.get_command(context, name)
        if command is None:
            return False
    return True


def parse_experiment_args(doc: str, argv: list[str] | None, inputs: dict[str, str | None],
                          tiny_help: str | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The experiments' shared command line: ``--tiny``, the full run's input folders (flag -> help), ``--out``
    and ``--device``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help=tiny_help)
    for flag, text in inputs.items():
        parser.add_argument(flag, type=Path, help=text)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    return parser, parser.parse_args(argv)


def real_and_synthetic(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: dict) -> tuple[Path, Path]:
    """Phantom stand-ins with ``--tiny``; otherwise ``--real`` and ``--synthetic``, both required."""
    if args.tiny:
        return phantom_pair(args.out, settings["n_real"], settings["n_synthetic"], settings["size"])
    if args.real is None or args.synthetic is None:
        parser.error("a full run needs --real and --synthetic (or pass --tiny)")
    return args.real, args.synthetic


def rendered_variants(config: dict, settings: dict, data: Path, masks: Path, out: Path, device: str):
    """For each ablation variant in config.json: train a renderer on ``data`` with its flags, render ``masks``;
    yields (slug, folder of rendered images)."""
    if not has_command("render", "train"):
        sys.exit("error: `retina render train` is not in this checkout yet; the full ablation needs it")
    for name, flags in config["variants"].items():
        slug = "".join(c if c.isalnum() else "_" for c in name.lower())
        run = out / f"render_{slug}"
        retina("render", "train", "--data", data, "--out", run, *settings["render_train"], *flags, "--device", device)
        fake = out / f"fake_{slug}"
        retina("render", "--masks", masks, "--checkpoint", run / "last.safetensors", "--out", fake, "--device", device)
        yield slug, fake
