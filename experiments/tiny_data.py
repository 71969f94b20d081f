"""Shared by the experiments' ``run.py --tiny``: phantom stand-ins for the real and generated sets, and
running one ``retina`` command in-process (the same code path as the console script)."""

from __future__ import annotations

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
