"""``retina render train``: the typer command (registered by retina/render/cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer


def render_train(
    data: Path | None = typer.Option(None, "--data", help="Canonical data set with images and masks."),
    out: Path | None = typer.Option(None, "--out", help="New run folder."),
    arch: str = typer.Option("drgan", "--arch", help="drgan (DR-GAN, default) or spade."),
    res: int = typer.Option(512, "--res", help="Output resolution (power of two)."),
    stage: str = typer.Option("fine", "--stage", help="drgan: coarse (G_m at res/2) or fine (G_m + G_l at res)."),
    init: Path | None = typer.Option(None, "--init", help="Coarse run/checkpoint to start the fine stage from."),
    resume: Path | None = typer.Option(None, "--resume", help="Run folder to resume."),
    batch: int = typer.Option(16, "--batch", help="Global batch size, split over torchrun processes (DR-GAN: 16)."),
    steps: int | None = typer.Option(None, "--steps", help="Total optimisation steps (default 10000; on --resume: "
                                                          "the run's total, or a larger one to train on)."),
    kimg: float | None = typer.Option(None, "--kimg", help="Or: thousands of real images to show in total."),
    width: int = typer.Option(64, "--width", help="Generator/discriminator base width."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    upsample: str = typer.Option("resize", "--upsample", help="drgan x2 upsampling: resize (bilinear + conv, "
                                                              "no checkerboard) or transpose (the paper's)."),
    no_sca: bool = typer.Option(False, "--no-sca", help="Ablation: no spatial/channel attention."),
    vae: bool = typer.Option(False, "--vae", help="spade: image encoder + KL (lambda 0.05), z into the first layer "
                                                  "for multimodal synthesis (Park et al.); default: deterministic, "
                                                  "the downsampled masks into the first layer (NVlabs' default)."),
    gan_loss: str = typer.Option("", "--gan-loss", help="Adversarial loss: lsgan or hinge (default: drgan lsgan, "
                                                        "spade hinge as NVlabs)."),
    discriminator: str = typer.Option("", "--discriminator", help="drgan (3 scales, global pooling, grade head) or "
                                                                  "patchgan (pix2pixHD/SPADE: 2 scales, spectral "
                                                                  "norm, patch maps); default: the arch's own."),
    spade_norm: str = typer.Option("instance", "--spade-norm", help="spade: parameter-free norm inside SPADE, "
                                                                    "instance (ours) or batch (NVlabs' sync BN)."),
    no_agm: bool = typer.Option(False, "--no-agm", help="Ablation: no adaptive grading manipulation."),
    no_lesion_masks: bool = typer.Option(False, "--no-lesion-masks", help="Ablation: vessels, od, fov only."),
    no_perceptual: bool = typer.Option(False, "--no-perceptual", help="Ablation: no VGG-19 perceptual loss."),
    no_cls: bool = typer.Option(False, "--no-cls", help="Ablation: no grade classification loss."),
    grader: str = typer.Option("resnet50", "--grader", help="Grading network: resnet50 (paper) or tiny."),
    grader_steps: int = typer.Option(200, "--grader-steps", help="Grading network training steps."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Folder with pretrained .pth weights."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (CUDA)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format."),
    every: int = typer.Option(500, "--every", help="Steps between samples/checkpoints."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train a mask-to-photograph renderer (DR-GAN coarse then fine, or SPADE)."""
    from retina.common.errors import RetinaError
    from retina.render.config import RenderConfig
    from retina.render.train import steps_for, train_renderer

    if (out is None) == (resume is None):
        raise RetinaError("give --out RUN for a new run or --resume RUN to continue one (not both)")
    if (steps is not None and steps < 1) or (kimg is not None and kimg <= 0):
        raise RetinaError("--steps and --kimg must be positive")
    # --kimg counts images of the run's own batch; 0 steps on --resume: train on to the run's saved total
    run_batch = _run_config(resume)["batch"] if resume is not None and kimg is not None else batch
    config = RenderConfig(
        arch=arch, res=res, width=width, stage=stage if arch == "drgan" else "fine", sca=not no_sca,
        agm=not no_agm, lesion_masks=not no_lesion_masks, perceptual=not no_perceptual, cls=not no_cls,
        grader_arch=grader, grader_steps=grader_steps, batch=batch, upsample=upsample, spade_vae=vae,
        adversarial=gan_loss, discriminator=discriminator, spade_norm=spade_norm,
        steps=steps_for(kimg, steps, run_batch, 0 if resume is not None else 10000),
        amp=amp, channels_last=channels_last, sample_every=every, checkpoint_every=every, seed=seed,
    )
    if data is None:
        if resume is None:
            raise RetinaError("--data DIR is required: a canonical data set with images and masks")
        data = _run_data(resume)
    train_renderer(data, resume or out, config, device=device, init=init, resume=resume is not None,
                   weights_dir=weights_dir)


def _run_config(run: Path) -> dict:
    """The config recorded in a run's last checkpoint; a run of another kind (a layout run) is refused by name."""
    from retina.common.run import RunFolder

    return RunFolder(run, {}, resume=True, is_main=False).load_last("render").config


def _run_data(run: Path) -> Path:
    """The data set a run was trained on (recorded in its checkpoint config), for --resume without --data."""
    return Path(_run_config(run)["data"])
