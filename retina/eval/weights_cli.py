"""`retina weights`: list the registered weight files and where they were found, fetch them (for users online)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_weights(
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Extra folder searched first."),
    verify: bool = typer.Option(False, "--verify", help="Also check size and sha256 of each file found (slow)."),
) -> None:
    """Table of weight files: name, file, where it was found (or missing), what uses it."""
    from rich.console import Console
    from rich.table import Table

    from retina.common.errors import RetinaError
    from retina.eval.weights import REGISTRY, locate, search_dirs, verify_file

    table = Table(title="weight files (searched: " + ", ".join(str(d) for d in search_dirs(weights_dir)) + ")")
    for column in ("name", "file", "found", "sha256", "used by"):
        table.add_column(column)
    for weights in REGISTRY.values():
        path = locate(weights.name, weights_dir)
        found = "missing" if path is None else str(path)
        if path is not None and verify:
            try:
                verify_file(path, weights)
                found += " (verified)"
            except RetinaError:
                found += " (BAD: size/sha256 mismatch)"
        digest = weights.sha256[:12] + ("..." if weights.full_digest else " (prefix only)")
        table.add_row(weights.name, weights.filename, found, digest, weights.used_by)
    Console(width=200).print(table)


@app.command("fetch")
def fetch(
    names: list[str] = typer.Argument(..., help="Registered names (see `retina weights list`)."),
    dest: Path | None = typer.Option(None, "--dest", help="Target folder [default: $TORCH_HOME/hub/checkpoints]."),
) -> None:
    """Download weight files, verify size and sha256, and rename them into place atomically."""
    from retina.common.progress import summary
    from retina.eval.weights import entry, fetch_weights

    for name in names:
        entry(name)  # unknown names fail before any download starts
    for name in names:
        path = fetch_weights(name, dest)
        summary(f"{name}: verified and written to {path}")
