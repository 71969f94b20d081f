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


@app.command("export")
def export(
    checkpoint: Path = typer.Argument(..., help="A layout or render checkpoint (.safetensors, or a run folder: its "
                                      "last; give RUN/best.safetensors for the selected one)."),
    out: Path = typer.Option(..., "--out", help="NAME.safetensors to write (with NAME.json and "
                             "NAME.fingerprint.json)."),
    half: bool = typer.Option(True, "--half/--full", help="fp16 weights (half the size; loaded into fp32)."),
) -> None:
    """An inference copy of a checkpoint: the generator's EMA weights only (what sampling needs), e.g. to ship."""
    from retina.common.checkpoint import file_sha256
    from retina.common.model_export import export_model
    from retina.common.progress import summary

    weights = export_model(checkpoint, out, half)
    size = weights.stat().st_size / 2**20
    summary(f"exported {checkpoint} -> {weights} ({size:.1f} MB, {'fp16' if half else 'as trained'}, sha256 "
            f"{file_sha256(weights)[:12]})")
