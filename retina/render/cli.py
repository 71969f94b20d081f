"""`retina render` and `retina generate` (placeholder until implemented)."""

import typer

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)


def generate() -> None:
    """Placeholder."""
