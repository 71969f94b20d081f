"""The ``retina`` command line. Each area owns its sub-application; this module joins them and turns
user errors into one line on stderr and exit code 2."""

from __future__ import annotations

import sys

import typer

from retina import __version__
from retina.bench.cli import app as bench_app
from retina.common.runs_cli import app as runs_app
from retina.data.cli import app as data_app
from retina.eval.cli import app as eval_app
from retina.eval.weights_cli import app as weights_app
from retina.layout.cli import app as layout_app
from retina.render.cli import app as render_app
from retina.render.cli import generate
from retina.studio.cli import studio

app = typer.Typer(
    name="retina",
    help="Synthesise diabetic-retinopathy fundus photographs together with pixel-exact lesion labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
app.add_typer(data_app, name="data", help="Import, make (phantom), inspect, preview and merge data sets.")
app.add_typer(layout_app, name="layout", help="Grade-conditioned semantic mask generators (step 1).")
app.add_typer(render_app, name="render", help="Render masks into fundus photographs (step 2).")
app.command("generate", help="Layout then render in one streaming pass: a balanced labelled data set.")(generate)
app.add_typer(eval_app, name="eval", help="Fidelity and layout metrics.")
app.add_typer(bench_app, name="bench", help="Downstream benchmarks: segmentation, grading, vessel pre-training.")
app.command("studio", help="A local web app to make, edit and render a retina.")(studio)
app.add_typer(runs_app, name="runs", help="Training run folders: plot their logged curves.")
app.add_typer(weights_app, name="weights", help="Pretrained weight files: where they are looked up, fetch them.")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        print(f"retina {__version__}")
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    """Entry point: a :class:`RetinaError` becomes ``error: ...`` on one line and exit status 2; Ctrl-C exits 130
    and SIGTERM 143, each with one line, after the commands' own clean-up has run."""
    from retina.common import interrupt
    from retina.common.errors import RetinaError
    from retina.common.options import install_number_checks
    from retina.common.output import release_all

    for stream in (sys.stdout, sys.stderr):
        # File names need not be valid UTF-8 (os.fsdecode keeps bad bytes as surrogates): never crash printing one.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    from retina.common.provenance import set_command

    set_command(sys.argv[1:] if argv is None else argv)
    try:
        with interrupt.handled():
            from retina.common.config_file import expand_config
            from retina.common.vocabulary import install_aliases

            command = install_aliases(install_number_checks(typer.main.get_command(app)))
            argv = expand_config(sys.argv[1:] if argv is None else list(argv), command)
            try:
                code = command.main(args=argv, prog_name="retina", standalone_mode=False)
            finally:
                release_all()
            if code == 130:  # typer returns 130 (not raises) for Ctrl-C and SIGTERM when standalone_mode is off
                raise KeyboardInterrupt
    except RetinaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:
        status, line = interrupt.exit_code(stop)
        print(f"error: {line}", file=sys.stderr)
        sys.exit(status)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except SystemExit:
        raise
    except Exception as error:
        if not isinstance(error, _usage_error_types()):
            raise
        # A usage error (bad option value, missing option) is a user error too: one line, exit 2.
        hint = f" (see `{error.ctx.command_path} --help`)" if getattr(error, "ctx", None) else ""
        print(f"error: {error.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)


def _usage_error_types() -> tuple[type, ...]:
    """typer bundles its own copy of click; a plugin may still raise the real click's errors."""
    import importlib

    types = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            types.append(importlib.import_module(name).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(types)


if __name__ == "__main__":
    main()
