"""``retina runs``: look at training run folders."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("plot")
def plot(
    run: Path = typer.Argument(..., help="A training run folder (it has log.jsonl)."),
    out: Path | None = typer.Option(None, "--out", help="PNG to write (default: RUN/curves.png)."),
) -> None:
    """Plot a run's logged losses, ADA p and metrics against training progress (TensorBoard: RUN/tensorboard)."""
    from retina.common.progress import summary
    from retina.common.run_plot import plot_run

    summary(f"curves of {run} -> {plot_run(run, out)}")
