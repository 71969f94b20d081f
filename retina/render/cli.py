"""``retina render`` (render a mask folder; ``retina render train`` trains a renderer) and ``retina generate``.

Torch and the models are imported inside the commands so that ``retina --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from retina.common.errors import RetinaError, parse_grade
from retina.common.split import parse_splits

app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Render masks into fundus photographs: `retina render --masks DIR --out DIR`, or `retina render train`.",
)


@app.callback(invoke_without_command=True)
def render(
    ctx: typer.Context,
    masks: Path | None = typer.Option(None, "--masks", help="Canonical-format folder of mask sets to render."),
    renderer: str | None = typer.Option(None, "--renderer", help="shipped (default: the renderer packaged with "
                                        "retina), procedural (the hand-written preview renderer) or a render "
                                        "checkpoint."),
    grade: str | None = typer.Option(
        None, "--grade", help="Grade 0-4 for rows of labels.csv without one (else the renderer predicts it)."),
    seed: int = typer.Option(0, "--seed", help="Base seed; sample i uses sample_seed(seed, i)."),
    batch: int = typer.Option(4, "--batch", help="Images rendered per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (CUDA; optional on CPU)."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="channels_last memory "
                                       "format for the renderer (measured 1.2x faster on CPU)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the renderer (start-up cost)."),
    split: str | None = typer.Option(None, "--split", help="Render only these rows of labels.csv: train, val, "
                                     "test or a comma list (e.g. test: the held-out masks)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (a new canonical data set)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Render every mask set in --masks; write images next to copies of the masks in --out."""
    if ctx.invoked_subcommand is not None:
        return
    if masks is None or out is None:
        missing = " and ".join(f"--{name}" for name, value in (("masks", masks), ("out", out)) if value is None)
        raise RetinaError(f"retina render: {missing} required (retina render --masks DIR --out DIR), "
                          "or a subcommand such as `retina render train`")
    grade_value = None if grade is None else parse_grade(grade, "--grade")
    splits = None if split is None else parse_splits(split, "--split")
    from retina.common.device import resolve_device
    from retina.render.infer import open_renderer, render_folder
    from retina.shipped import resolve_model

    torch_device = resolve_device(device)
    checkpoint = resolve_model(renderer, "render", "--renderer")
    model = open_renderer(checkpoint, torch_device, amp=amp, channels_last=channels_last, compile=compile)
    render_folder(masks, out, model, grade=grade_value, seed=seed, batch=batch, device=torch_device,
                  overwrite=overwrite, checkpoint=checkpoint, splits=splits)


try:  # the trainer lives in its own module (retina/render/train_cli.py)
    from retina.render.train_cli import render_train
except ModuleNotFoundError as error:  # pragma: no cover - only while the trainer is not there
    if error.name != "retina.render.train_cli":
        raise
else:
    app.command("train", help="Train a DR-GAN or SPADE renderer on a canonical data set.")(render_train)


@app.command("train-sketch")
def train_sketch(
    data: Path | None = typer.Option(None, "--data", help="Canonical data set with photographs: (sketch draft, "
                                     "photograph) pairs from its split=train rows."),
    res: int = typer.Option(512, "--res", help="Training resolution, a multiple of 16 (SkrGAN: 512)."),
    kimg: float | None = typer.Option(None, "--kimg", help="Train until this many thousand pairs have been shown "
                                      "(default 10; on --resume the run's own total)."),
    batch: int = typer.Option(16, "--batch", help="Batch size (SkrGAN: 16)."),
    width: int = typer.Option(64, "--width", help="U-Net first-stage channels of G_P (U-Net: 64)."),
    d_width: int = typer.Option(64, "--d-width", help="PatchGAN first-layer channels of D_P (pix2pix: 64)."),
    l1_weight: float = typer.Option(100.0, "--l1-weight", help="λ of the L1 term (SkrGAN: 100)."),
    lr: float = typer.Option(0.0002, "--lr", help="Adam learning rate of G_P and D_P (SkrGAN: 0.0002)."),
    seed: int | None = typer.Option(None, "--seed", help="Run seed (default 0)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (config, log.jsonl, samples/, last checkpoint)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train SkrGAN's colour render mapping G_P (U-Net, PatchGAN D_P, adversarial + λ L1) on (sketch,
    photograph) pairs; render its sketches with `retina generate --vessels sketch --renderer RUN` or
    `retina render --masks DIR --renderer RUN` (the sketch in masks/vessels)."""
    from retina.render.skrgan_train import train_stage_command

    model = {"res": res, "width": width, "d_width": d_width, "l1_weight": l1_weight, "lr": lr}
    train_stage_command("render", data, model, kimg, batch, seed, out, resume, device, quiet)


def generate(
    out: Path = typer.Option(..., "--out", help="Output folder (a new canonical data set)."),
    grades: str = typer.Option("uniform", "--grades", help="'uniform' (balanced 0-4), '4', '0,2,4' or '0-4'."),
    n: int = typer.Option(1000, "--n", help="Number of images over all shards."),
    layout: str | None = typer.Option(None, "--layout", help="shipped (default: the layout GAN packaged with "
                                      "retina), procedural (the hand-written prior) or a layout checkpoint."),
    renderer: str | None = typer.Option(None, "--renderer", help="shipped (default: the renderer packaged with "
                                        "retina), procedural (the hand-written preview renderer) or a render "
                                        "checkpoint."),
    seed: int = typer.Option(0, "--seed", help="Base seed; global index i uses sample_seed(seed, i)."),
    res: int | None = typer.Option(None, "--res", help="Resolution (default: the renderer's, else 256)."),
    batch: int = typer.Option(8, "--batch", help="Samples per streaming step (memory is constant in --n)."),
    shard: str | None = typer.Option(
        None, "--shard", help="i/n: generate only shard i of n (under torchrun: rank/world automatically)."),
    truncation: float = typer.Option(1.0, "--truncation", help="Layout sampling truncation (1 = none)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast for the renderer."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="channels_last memory "
                                       "format for the renderer (the layout GAN always uses it)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the networks (start-up cost)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue a killed run from OUT.partial (give the same options again)."),
    single_od: bool = typer.Option(True, "--single-od/--raw", help="Post-process layouts: exactly one optic disc "
                                   "and a field of view without holes, as `retina layout sample` (--raw: none)."),
    vessels: str = typer.Option("gan", "--vessels", help="gan (the layout model's own), aae (a vessel AAE redraws "
                                "them), or sketch: SkrGAN, the sketch generator draws a sketch and the colour "
                                "renderer (--renderer from `retina render train-sketch`) renders it; no layout "
                                "model, lesions or grades."),
    vessels_checkpoint: Path | None = typer.Option(None, "--vessels-checkpoint", help="AAE or sketch generator "
                                                   "checkpoint (`retina layout train-aae` / `train-sketch`)."),
) -> None:
    """Layout then render in one streaming pass: a balanced, labelled canonical data set."""
    from retina.common.device import resolve_device
    from retina.render.generate import generate_dataset
    generate_dataset(out, n, grades=grades, layout_ckpt=layout, render_ckpt=renderer, seed=seed, res=res,
                     batch=batch, shard=shard, device=resolve_device(device), amp=amp, truncation=truncation,
                     channels_last=channels_last, compile=compile,
                     overwrite=overwrite, resume=resume, post_process=single_od, vessels=vessels,
                     vessels_checkpoint=vessels_checkpoint)
