"""`retina eval`: fidelity metrics between a real and a generated data set (and, below, the layout metrics)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


def _format(value: float) -> str:
    return f"{value:.4g}"


def print_fidelity_table(report: dict) -> None:
    """Metrics as rows, groups (all, grade 0..4, grade mean) as columns."""
    from rich.console import Console
    from rich.table import Table

    groups = [g for g in report["metrics"] if report["metrics"][g]]
    columns = groups + (["grade mean"] if report["grade_mean"] else [])
    table = Table(title=f"fidelity: {report['fake']} vs {report['real']} ({report['n_fake']} vs {report['n_real']} "
                        f"images, pixel metrics at {report['res']} px)")
    table.add_column("metric")
    for column in columns:
        table.add_column(column, justify="right")
    names = list(dict.fromkeys(n for g in groups for n in report["metrics"][g]))
    for name in names:
        row = [report["metrics"][g].get(name) for g in groups]
        if report["grade_mean"]:
            row.append(report["grade_mean"].get(name))
        table.add_row(name, *("-" if v is None else _format(v) for v in row))
    console = Console(width=max(100, 16 * (len(columns) + 2)))
    console.print(table)
    for metric, variant in report.get("variants", {}).items():
        console.print(f"{metric}: {variant}", highlight=False)
    for group, reason in report["skipped"].items():
        console.print(f"skipped {group}: {reason}")


@app.command("fidelity")
def fidelity(
    real: Path = typer.Option(..., "--real", help="Canonical data set of real photographs."),
    fake: Path = typer.Option(..., "--fake", help="Canonical data set of generated photographs."),
    per_grade: bool = typer.Option(False, "--per-grade", help="Also per DR grade, and the mean over grades."),
    metrics: str | None = typer.Option(
        None, "--metrics",
        help="Comma list of fd-effnet,kd-effnet,swd,msssim,lpips,fid,kid [default: the offline ones, plus "
             "lpips/fid/kid when their weights are found].",
    ),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Folder searched first for weight files."),
    res: int = typer.Option(
        256, "--res", min=16,
        help="Resolution of the pixel metrics (SWD, MS-SSIM, LPIPS). MS-SSIM has 5 scales above 160 px; below, the "
             "output names the fewer-scale variant (MS-SSIM-4scale, ...).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the full report as JSON here."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(16, "--batch", min=1),
    num_workers: int = typer.Option(0, "--num-workers", min=0, help="Image-decoding workers for feature extraction."),
    pairs: int = typer.Option(100, "--pairs", min=1, help="Random image pairs for the diversity scores."),
    max_images: int | None = typer.Option(None, "--max-images", min=2, help="Use at most this many images per set."),
    real_split: str | None = typer.Option(None, "--real-split", help="Compare against only these rows of --real "
                                          "(train, val or test; e.g. test: photographs no generator trained on)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """FD/KD on EfficientNet-Lite0 (offline), FID/KID (clean-fid Inception), SWD, MS-SSIM and LPIPS diversity."""
    import json

    from retina.common.errors import RetinaError
    from retina.common.imageio import write_text_atomic
    from retina.common.progress import summary
    from retina.eval.fidelity import FidelityOptions, evaluate_fidelity, parse_metrics

    options = FidelityOptions(
        metrics=parse_metrics(metrics, weights_dir), per_grade=per_grade, res=res, weights_dir=weights_dir,
        device=device, batch_size=batch_size, num_workers=num_workers, pairs=pairs, seed=seed, max_images=max_images,
        real_split=real_split,
    )
    if real_split is not None and real_split not in ("train", "val", "test"):
        raise RetinaError(f"--real-split {real_split}: choose train, val or test")
    report = evaluate_fidelity(real, fake, options)
    print_fidelity_table(report)
    if out is not None:
        write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    headline = ", ".join(f"{k} {_format(v)}" for k, v in report["metrics"]["all"].items() if "px" not in k)
    summary(f"fidelity of {report['n_fake']} generated vs {report['n_real']} real: {headline}"
            + (f"; JSON in {out}" if out else ""))

from retina.eval.layout_cli import layout as _layout  # noqa: E402  (registered after the commands above)

app.command("layout")(_layout)
