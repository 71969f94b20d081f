"""``retina layout``: train grade-conditioned mask generators and sample layouts from them."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train(
    data: Path | None = typer.Option(None, help="Canonical data set with masks and grades (default on --resume: "
                                                   "the run's)."),
    arch: str | None = typer.Option(None, help="stylegan (default) or acgan."),
    res: int | None = typer.Option(None, help="Training resolution, a power of two (default 256)."),
    batch: int | None = typer.Option(None, help="Global batch size, split over torchrun processes (default 16)."),
    kimg: float | None = typer.Option(None, help="Train until this many thousand real images have been shown "
                                                 "(default 1; on --resume: the run's total, or a larger one)."),
    out: Path | None = typer.Option(None, help="Run folder (config, log.jsonl, samples/, last/best checkpoints)."),
    resume: Path | None = typer.Option(None, help="Continue the run in this folder (all state restored)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    cfg: str | None = typer.Option(None, help="Network preset: small (default; CPU-sized, z = w = 64, channel base "
                                              "2048), paper256 or auto (stylegan2-ada-pytorch's: z = w = 512, "
                                              "channel base 16384 capped at 512, 8 / 2 mapping layers, style mixing "
                                              "0.9, path length weight 2). The options below override it."),
    z_dim: int | None = typer.Option(None, help="Latent z size (small 64, paper256/auto 512)."),
    w_dim: int | None = typer.Option(None, help="Style w size (small 64, paper256/auto 512)."),
    mapping_layers: int | None = typer.Option(None, help="Mapping network depth (small 2, paper256 8, auto 2)."),
    channel_base: int | None = typer.Option(None, help="Feature channels at resolution r are channel_base / r "
                                                       "(small 2048: 8 at 256 px; paper256/auto 16384)."),
    channel_max: int | None = typer.Option(None, help="Cap on feature channels (small 128, paper256/auto 512)."),
    style_mixing: float | None = typer.Option(None, help="Style mixing probability (small 0, paper256/auto 0.9)."),
    pl_weight: float | None = typer.Option(None, help="Path-length regulariser weight, lazy every 4 G steps on half "
                                                      "the batch, decay 0.01 (small 0 = off, paper256/auto 2)."),
    snapshot_kimg: float | None = typer.Option(None, help="Grid, best-metric evaluation and checkpoint every N kimg "
                                                        "(default 0.5)."),
    ada_target: float = typer.Option(0.6, help="ADA target r_t for E[sign(D(real))]."),
    ada_kimg: float = typer.Option(500.0, help="Images (thousands) for ADA p to move from 0 to 1."),
    g_steps: int = typer.Option(2, help="Generator steps per discriminator step (Son et al.: 2)."),
    label_smoothing: float = typer.Option(0.9, help="One-sided label smoothing: D's target for reals."),
    blur_sigma: float = typer.Option(1.0, help="Gaussian softening of masks before D (pixels; 0 = off)."),
    blur_lesions_only: bool = typer.Option(False, "--blur-lesions-only/--blur-all",
                                           help="Blur only the lesion channels for D (vessels, disc, field sharp)."),
    hard_fakes: bool = typer.Option(False, "--hard-fakes/--soft-fakes", help="Show D fakes thresholded at 0.5 "
                                    "(straight-through gradient), as sampling makes them."),
    d_classifier: bool | None = typer.Option(None, "--d-classifier/--no-d-classifier",
                                             help="StyleGAN D: an auxiliary grade classifier beside the "
                                                  "projection head (default on)."),
    ac_on_fakes: bool = typer.Option(True, "--ac-on-fakes/--ac-on-reals",
                                     help="Train D's grade classifier on fakes and reals (Odena et al.) or on reals "
                                          "only."),
    r1_gamma: float = typer.Option(1.0, help="R1 weight (lazy, every 16 D steps)."),
    lr: float | None = typer.Option(None, help="Adam learning rate (default: stylegan 0.0025, acgan 0.0002)."),
    seed: int | None = typer.Option(None, help="Run seed (default 0)."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="bf16 autocast (CUDA and CPU); default off, on "
                                    "--resume the run's."),
    channels_last: bool | None = typer.Option(None, "--channels-last/--no-channels-last", help="channels_last "
                                              "memory format; default off, on --resume the run's."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a layout GAN: progress with losses and ADA p, sample grids, last/best checkpoints, --resume."""
    from retina.common.errors import RetinaError
    from retina.layout.config import (
        ARCHS,
        GENERATOR_PRESET_FIELDS,
        TRAIN_PRESET_FIELDS,
        GeneratorConfig,
        LayoutTrainConfig,
        TrainConfig,
        cfg_preset,
    )
    from retina.layout.train import train_layout

    if resume is None and out is None:
        raise RetinaError("give --out RUN for a new run, or --resume RUN to continue one")
    if resume is not None and out is not None and Path(out) != Path(resume):
        raise RetinaError(f"--resume {resume} and --out {out} differ; a resumed run continues in its own folder")
    if arch is not None and arch not in ARCHS:
        raise RetinaError(f"--arch {arch}: unknown layout architecture; choose one of {', '.join(ARCHS)}")
    if (batch is not None and batch < 1) or (kimg is not None and kimg <= 0):
        raise RetinaError("--batch and --kimg must be positive")
    given = {"z_dim": z_dim, "w_dim": w_dim, "mapping_layers": mapping_layers, "channel_base": channel_base,
             "channel_max": channel_max, "style_mixing": style_mixing, "pl_weight": pl_weight}
    for name, value in given.items():
        if value is not None and (value < 0 if name in ("style_mixing", "pl_weight") else value < 1):
            raise RetinaError(f"--{name.replace('_', '-')} {value}: must be "
                              f"{'>= 0' if name in ('style_mixing', 'pl_weight') else 'positive'}")
    if style_mixing is not None and style_mixing > 1:
        raise RetinaError(f"--style-mixing {style_mixing}: a probability, 0 to 1")
    if resume is not None:  # None: take it from the checkpoint; a given network option must agree with it
        if cfg is not None:
            raise RetinaError(f"--cfg {cfg}: a resumed run keeps its networks; drop --cfg")
        generator = GeneratorConfig(arch=arch, res=res, d_classifier=d_classifier,
                                    **{k: given.get(k) for k in GENERATOR_PRESET_FIELDS})
        regularisers = {k: TrainConfig().to_dict()[k] if given[k] is None else given[k] for k in TRAIN_PRESET_FIELDS}
    else:
        if (arch or "stylegan") != "stylegan" and cfg not in (None, "small"):
            raise RetinaError(f"--cfg {cfg} is a StyleGAN2 preset; --arch {arch} takes --channel-base/--channel-max")
        preset = cfg_preset(cfg or "small", res or 256)
        chosen = {k: preset[k] if given.get(k) is None else given[k] for k in preset}
        generator = GeneratorConfig(arch=arch or "stylegan", res=res or 256, cfg=cfg or "small",
                                    **{k: chosen[k] for k in GENERATOR_PRESET_FIELDS})
        if d_classifier is not None:
            generator.d_classifier = d_classifier
        regularisers = {k: chosen[k] for k in TRAIN_PRESET_FIELDS}
    if resume is None:  # before the run folder exists (a resumed run checks nothing new: its sizes ran before)
        from retina.common.memory import layout_training_bytes, require_memory

        run_batch = batch or LayoutTrainConfig.batch or 16
        require_memory(layout_training_bytes(run_batch, generator.res, generator.feature_channels),
                       layout_training_bytes(1, generator.res, generator.feature_channels),
                       "layout training", run_batch, generator.res)
    if lr is None:  # StyleGAN2-ADA's rate assumes equalised-lr layers; ACGAN/DCGAN use 2e-4 (Odena et al.)
        lr = 0.0002 if arch == "acgan" else 0.0025
    training = TrainConfig(lr_g=lr, lr_d=lr, g_steps=g_steps, label_smoothing=label_smoothing, r1_gamma=r1_gamma,
                           ada_target=ada_target, ada_kimg=ada_kimg, blur_sigma=blur_sigma,
                           hard_fakes=hard_fakes, ac_on_fakes=ac_on_fakes,
                           blur_lesions_only=blur_lesions_only, **regularisers)
    config = LayoutTrainConfig(data=str(data) if data else "", out=str(resume or out), batch=batch, kimg=kimg,
                               snapshot_kimg=snapshot_kimg, seed=seed, device=device, amp=amp,
                               channels_last=channels_last, generator=generator, train=training)
    train_layout(config, resume=resume is not None, progress=not quiet)


@app.command("sample")
def sample(
    grade: str = typer.Option("uniform", "--grades", help="A grade 0-4, a list 0,2,4, a range 0-4 or 'uniform'."),
    n: int = typer.Option(16, help="Number of layouts."),
    seed: int = typer.Option(0, help="Base seed; sample i uses a seed derived from (seed, i)."),
    checkpoint: Path | None = typer.Option(None, help="Layout checkpoint (file or run folder); default: the "
                                                         "procedural prior."),
    vessels: str = typer.Option("gan", help="gan (the model's own), aae or sketch (needs --vessels-checkpoint)."),
    vessels_checkpoint: Path | None = typer.Option(None, help="AAE/sketch vessel checkpoint."),
    truncation: float = typer.Option(1.0, help="Pull w toward the grade's mean w (1 = off, 0.7 typical)."),
    res: int = typer.Option(512, help="Output resolution (GAN masks are upsampled from the training resolution)."),
    batch: int = typer.Option(16, help="Layouts per forward pass."),
    single_od: bool = typer.Option(True, "--single-od/--raw", help="Post-process: exactly one optic disc, rooted "
                                   "in the vessels, and a field of view without holes (--raw: none)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last",
                                       help="channels_last memory format for GAN sampling (measured faster)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the GAN (start-up cost; measured no gain "
                                                          "on CPU)."),
    out: Path = typer.Option(Path("layout-samples"), help="Output folder (canonical format)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Sample grade-conditioned layouts into a canonical data set with labels.csv and preview.png."""
    from retina.common.device import resolve_device
    from retina.common.errors import RetinaError, parse_grades
    from retina.common.seeding import sample_seed
    from retina.layout.model import load_layout_model
    from retina.layout.sample import write_layouts

    if res < 8:
        raise RetinaError(f"--res {res}: too small; use --res 8 or more")
    from retina.common.memory import require_memory, sampling_bytes

    require_memory(sampling_bytes(min(batch, n), res), sampling_bytes(1, res), "sampling layouts", min(batch, n), res)
    grades = parse_grades(grade, n)
    device_ = resolve_device(device)
    model = load_layout_model(checkpoint, device_, channels_last=channels_last, compile=compile)
    source = None
    if vessels != "gan" or vessels_checkpoint is not None:
        from retina.layout.vessels import load_vessel_source

        source = load_vessel_source(vessels, vessels_checkpoint, device_)
    post_process = None
    if single_od:
        from retina.layout.post_process import clean_layout

        post_process = clean_layout
    from retina.common.fingerprint import generator_record

    generators = [generator_record("layout", model.name, checkpoint)]
    if source is not None:
        generators.append(generator_record("vessels", vessels, source.checkpoint_path))
    seeds = [sample_seed(seed, i) for i in range(n)]
    write_layouts(model, grades, seeds, res, out, batch=batch, truncation=truncation, vessels=source,
                  vessels_name=model.name if source is None else vessels,  # the model's own: name the model
                  post_process=post_process, overwrite=overwrite, generators=generators)


def _train_vessel_model(kind: str, data: Path | None, res: int, kimg: float | None, batch: int, latent: int,
                        width: int, encoder: str,
                        lr: float, seed: int | None, out: Path | None, resume: Path | None, device: str, quiet: bool
                        ) -> None:
    from retina.common.errors import RetinaError
    from retina.layout.aae import AAEConfig
    from retina.layout.aae_train import AAETrainConfig, train_aae

    if resume is None and out is None:
        raise RetinaError("give --out RUN for a new run, or --resume RUN to continue one")
    if resume is not None and out is not None and Path(out) != Path(resume):
        raise RetinaError(f"--resume {resume} and --out {out} differ; a resumed run continues in its own folder")
    if resume is not None:
        from retina.common.run import RunFolder

        last = RunFolder(resume, {}, resume=True, is_main=False).load_last(kind)
        saved = last.config["training"]
        total = saved["kimg"] if kimg is None else kimg  # like `layout train`: on to the run's total or a larger one
        done = int(last.state["images_seen"]) / 1000
        if total * 1000 <= int(last.state["images_seen"]):
            raise RetinaError(f"{resume} has already trained {done:g} kimg; pass --kimg larger than {done:g} "
                              "to continue")
        config = AAETrainConfig(**{**saved, "model": AAEConfig.from_saved(saved["model"]), "kimg": total})
    else:
        kimg = AAETrainConfig.kimg if kimg is None else kimg
        if data is None:
            raise RetinaError("--data DIR is needed for a new run")
        if (batch is not None and batch < 1) or kimg <= 0:
            raise RetinaError("--batch and --kimg must be positive")
        config = AAETrainConfig(data=str(data), kind=kind, model=AAEConfig(res=res, latent=latent, width=width,
                                                                          encoder=encoder),
                                kimg=kimg, batch=batch, lr=lr, seed=0 if seed is None else seed)
    train_aae(config, resume or out, resume=resume is not None, device=device, show_progress=not quiet)


def _vessel_train_command(kind: str, doc: str, data_help: str, shown: str, latent_help: str, resume_help: str):
    """The `train-aae` / `train-sketch` command: the same options (help texts differ) feeding `_train_vessel_model`."""

    def command(
        data: Path | None = typer.Option(None, help=data_help),
        res: int = typer.Option(128, help="Training resolution, a power of two (Mahajan et al.: 256)."),
        kimg: float | None = typer.Option(None, help=f"Train until this many thousand {shown} have been shown "
                                                      "(default 10; on --resume the run's own total)."),
        batch: int = typer.Option(16, help="Batch size."),
        latent: int = typer.Option(128, help=latent_help),
        width: int = typer.Option(16, help="Feature channels at full resolution (doubling per halving)."),
        encoder: str = typer.Option("stochastic", help="stochastic: mu and sigma heads with the reparameterisation "
                                                       "trick (Mahajan et al., Makhzani et al.); deterministic: "
                                                       "z = f(x)."),
        lr: float = typer.Option(2e-4, help="Adam learning rate."),
        seed: int | None = typer.Option(None, help="Run seed (default 0)."),
        out: Path | None = typer.Option(None, help="Run folder (config, log.jsonl, last checkpoint)."),
        resume: Path | None = typer.Option(None, help=resume_help),
        device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        _train_vessel_model(kind, data, res, kimg, batch, latent, width, encoder, lr, seed, out, resume, device,
                            quiet)

    command.__doc__ = doc
    return command


train_aae_command = app.command("train-aae")(_vessel_train_command(
    "aae", "Train the vessel-tree adversarial autoencoder used by `retina layout sample --vessels aae`.",
    data_help="Canonical data set with vessel masks.", shown="vessel maps",
    latent_help="Code size (Mahajan et al.: 128).",
    resume_help="Continue the run in this folder (optimisers, RNG, counters)."))


@app.command("train-sketch")
def train_sketch(
    data: Path | None = typer.Option(None, help="Canonical data set with photographs: SkrGAN sketch drafts are "
                                                "extracted from its split=train rows (Sobel, Gaussian, opening, "
                                                "closing)."),
    res: int = typer.Option(128, help="Training resolution, a power of two (SkrGAN: 512)."),
    kimg: float | None = typer.Option(None, help="Train until this many thousand sketches have been shown "
                                                 "(default 10; on --resume the run's own total)."),
    batch: int = typer.Option(16, help="Batch size (SkrGAN: 16)."),
    latent: int = typer.Option(512, help="Size of z (PGGAN: 512)."),
    width: int | None = typer.Option(None, help="Feature channels at full resolution, doubling per halving up to "
                                                "--channel-max (default: PGGAN's rule, 8192 / 2^stage)."),
    channel_max: int = typer.Option(512, help="Cap on feature channels (PGGAN: 512)."),
    lr: float = typer.Option(0.001, help="Adam learning rate of G_S and D_S (SkrGAN: 0.001)."),
    seed: int | None = typer.Option(None, help="Run seed (default 0)."),
    out: Path | None = typer.Option(None, help="Run folder (config, log.jsonl, samples/, last checkpoint)."),
    resume: Path | None = typer.Option(None, help="Continue the run in this folder."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train SkrGAN's sketch generator G_S (a PGGAN-style GAN) on sketches extracted from photographs; used by
    `retina layout sample --vessels sketch` and `retina generate --vessels sketch` (with a colour renderer from
    `retina render train-sketch`)."""
    from retina.render.skrgan_train import train_stage_command

    model = {"res": res, "latent": latent, "fmap_max": channel_max, "lr": lr}
    if width is not None:
        model["fmap_base"] = width * res // 2  # PGGAN's rule gives `width` channels at `res`
    train_stage_command("sketch", data, model, kimg, batch, seed, out, resume, device, quiet)


@app.command("edit")
def edit(
    source: Path = typer.Argument(..., help="Canonical set of layouts (or a set with photographs: its masks)."),
    out: Path = typer.Option(..., "--out", help="Output folder (masks-only canonical set); must not exist."),
    remove: list[str] = typer.Option([], "--remove", help="Remove every lesion of a channel, e.g. --remove he "
                                                          "(repeatable)."),
    add: list[str] = typer.Option([], "--add", help="CHANNEL:N: draw N more lesions with the prior's drawing "
                                                    "code, e.g. --add ma:20 (ex: N clusters, nv: N tangles)."),
    scale: list[str] = typer.Option([], "--scale", help="CHANNEL:FACTOR: grow or shrink each lesion about its "
                                                        "centre, e.g. --scale ex:2."),
    shift: list[str] = typer.Option([], "--move", help="CHANNEL:DX,DY: shift a channel by whole pixels, e.g. "
                                                       "--move he:5,-3."),
    grade: str | None = typer.Option(None, "--grade", help="The stated grade of the edited layouts (default: each "
                                                           "keeps its own); the grade rule is checked against it."),
    names: str | None = typer.Option(None, "--names", help="Comma-separated sample names to edit (default: all)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the added lesions (layout i uses a seed derived from it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Edit lesions of layouts (remove, scale, move, then add) and check the grade rule; re-render with
    `retina render --masks OUT`."""
    from retina.layout.edit_set import edit_set, parse_plan

    plan = parse_plan(remove, add, scale, shift, grade)
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names else None
    edit_set(source, out, plan, names=chosen, seed=seed, overwrite=overwrite)
