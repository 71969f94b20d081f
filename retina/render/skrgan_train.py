"""Training SkrGAN's two stages, one per command (Eq. 3 is a sum of the two games, which share no weights):

* ``retina layout train-sketch``: the sketch guidance module G_S/D_S on the drafts of the photographs;
* ``retina render train-sketch``: the colour render mapping G_P/D_P on (draft, photograph) pairs.

Both read the ``split=train`` rows of a canonical set and extract the drafts once, in memory. Each step is
one D update then one G update on a random batch, left/right flipped at random (both eyes). A run folder
holds config.json, log.jsonl, ``samples/`` grids and ``last.safetensors`` (everything to ``--resume``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retina.common.checkpoint import load_module, rng_state, set_rng_state
from retina.common.device import resolve_device
from retina.common.errors import RetinaError
from retina.common.imageio import write_png
from retina.common.progress import progress_bar, summary
from retina.common.run import RunFolder
from retina.common.seeding import seed_everything
from retina.layout.sketch import load_sketch_pairs

STAGES = ("sketch", "render")


@dataclass
class SkrGANTrainConfig:
    data: str = ""
    stage: str = "sketch"  # "sketch": G_S on drafts; "render": G_P on (draft, photograph) pairs
    model: dict[str, Any] = field(default_factory=dict)  # SketchGANConfig or ColourRenderConfig fields
    kimg: float = 10.0  # thousands of training images shown
    batch: int = 16  # SkrGAN sec. 3
    log_every: int = 10  # steps
    checkpoint_every: int = 200  # steps
    seed: int = 0


def build_stage(config: SkrGANTrainConfig) -> torch.nn.Module:
    if config.stage == "sketch":
        from retina.layout.sketch_gan import SketchGAN, SketchGANConfig

        return SketchGAN(SketchGANConfig(**config.model))
    if config.stage == "render":
        from retina.render.skrgan import ColourRenderConfig, ColourRenderMapping

        return ColourRenderMapping(ColourRenderConfig(**config.model))
    raise RetinaError(f"unknown SkrGAN stage '{config.stage}'; use one of {', '.join(STAGES)}")


def _losses(model: torch.nn.Module, stage: str, images: torch.Tensor, sketches: torch.Tensor, part: str
            ) -> dict[str, torch.Tensor]:
    arguments = (sketches,) if stage == "sketch" else (images * 2 - 1, sketches)
    return getattr(model, f"{part}_loss")(*arguments)


def _preview(model: torch.nn.Module, stage: str, sketches: torch.Tensor) -> np.ndarray:
    """A grid: eight sampled sketches (stage sketch), or eight training drafts over their renderings."""
    sketches = sketches[torch.arange(8) % len(sketches)]
    with torch.no_grad():
        if stage == "sketch":
            tiles = torch.from_numpy(model.sample(list(range(8)))).float()[:, None].expand(-1, 3, -1, -1)
        else:
            model.eval()
            rendered = (model.render(sketches.to(next(model.parameters()).device)) + 1) / 2
            model.train()
            tiles = torch.cat([sketches.expand(-1, 3, -1, -1), rendered.cpu()], dim=0)
    rows = tiles.view(-1, 8, *tiles.shape[1:]).permute(0, 3, 1, 4, 2)  # (rows, H, 8, W, 3)
    grid = rows.reshape(rows.shape[0] * rows.shape[1], rows.shape[2] * rows.shape[3], 3)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def train_skrgan(config: SkrGANTrainConfig, out: str | Path, resume: bool = False, device: str = "auto",
                 show_progress: bool = True) -> Path:
    """Train (or resume) one SkrGAN stage in ``out``; returns the path of ``last.safetensors``."""
    run_device = resolve_device(device)
    model = build_stage(config)  # validates the model options before anything is read or written
    res = model.config.res
    images, sketches = load_sketch_pairs(config.data, res)  # before any output exists
    run = RunFolder(out, {"kind": f"skrgan-{config.stage}", **asdict(config)}, resume=resume)
    seed_everything(config.seed)
    if config.stage == "sketch" and not resume:
        model.config.train_fraction = config.model["train_fraction"] = round(float(sketches.mean()), 6)
    model = model.to(run_device)
    betas = tuple(model.config.betas)
    optim_g = torch.optim.Adam(model.generator.parameters(), lr=model.config.lr, betas=betas)
    optim_d = torch.optim.Adam(model.discriminator.parameters(), lr=model.config.lr, betas=betas)
    images_seen, step = 0, 0
    if resume:
        last = run.load_last().expect(model.checkpoint_config()["kind"], model.checkpoint_config()["arch"])
        load_module(model, last.submodule("model"), last.path)
        optim_g.load_state_dict(last.state["optim_g"])
        optim_d.load_state_dict(last.state["optim_d"])
        images_seen, step = int(last.state["images_seen"]), int(last.state["step"])
        set_rng_state(last.state["rng"])

    def save() -> None:
        state = {"optim_g": optim_g.state_dict(), "optim_d": optim_d.state_dict(), "images_seen": images_seen,
                 "step": step, "rng": rng_state()}
        run.save("last", model.tensors(), {**model.checkpoint_config(), "training": asdict(config)}, state)
        preview = _preview(model, config.stage, sketches)
        write_png(run.samples / f"{images_seen:08d}img.png", preview)
        run.add_image("samples", preview, images_seen)

    total = int(config.kimg * 1000)
    record: dict[str, float] = {}
    model.train()
    with progress_bar(total, f"train-{config.stage} (SkrGAN)", enabled=show_progress) as bar:
        bar.advance(min(images_seen, total))
        while images_seen < total:
            index = torch.randint(len(sketches), (config.batch,))
            flip = (torch.rand(config.batch) < 0.5).view(-1, 1, 1, 1)
            batch_images = torch.where(flip, images[index].flip(-1), images[index]).to(run_device)
            batch_sketches = torch.where(flip, sketches[index].flip(-1), sketches[index]).to(run_device)
            d = _losses(model, config.stage, batch_images, batch_sketches, "discriminator")
            optim_d.zero_grad(set_to_none=True)
            d["d"].backward()
            optim_d.step()
            g = _losses(model, config.stage, batch_images, batch_sketches, "generator")
            optim_g.zero_grad(set_to_none=True)
            g["g"].backward()
            optim_g.step()
            images_seen += config.batch
            step += 1
            record = {k: float(v.detach()) for k, v in {**d, **g}.items()}
            bar.advance(config.batch, **record)
            if step % config.log_every == 0:
                run.log({"step": step, "kimg": images_seen / 1000, **record})
            if step % config.checkpoint_every == 0:
                save()
    save()
    final = {k: round(v, 4) for k, v in record.items()}
    summary(f"trained SkrGAN {config.stage} stage for {images_seen / 1000:.2f} kimg ({step} steps) on "
            f"{len(sketches)} train photographs: {final} -> {run.path}")
    return run.path / "last.safetensors"


def train_stage_command(stage: str, data: Path | None, model: dict[str, Any], kimg: float | None, batch: int,
                        seed: int | None, out: Path | None, resume: Path | None, device: str, quiet: bool) -> None:
    """The shared body of ``retina layout train-sketch`` and ``retina render train-sketch``."""
    if resume is None and out is None:
        raise RetinaError("give --out RUN for a new run, or --resume RUN to continue one")
    if resume is not None and out is not None and Path(out) != Path(resume):
        raise RetinaError(f"--resume {resume} and --out {out} differ; a resumed run continues in its own folder")
    if batch < 1 or (kimg is not None and kimg <= 0):
        raise RetinaError("--batch and --kimg must be positive")
    if resume is not None:
        last = RunFolder(resume, {}, resume=True, is_main=False).load_last()
        saved = last.config.get("training", {})
        if saved.get("stage") != stage:
            raise RetinaError(f"{resume}: not a SkrGAN {stage}-stage run; resume it with its own command")
        total = saved["kimg"] if kimg is None else kimg
        done = int(last.state["images_seen"]) / 1000
        if total * 1000 <= int(last.state["images_seen"]):
            raise RetinaError(f"{resume} has already trained {done:g} kimg; pass --kimg larger than {done:g} "
                              "to continue")
        config = SkrGANTrainConfig(**{**saved, "kimg": total})
    else:
        if data is None:
            raise RetinaError("--data DIR is needed for a new run")
        config = SkrGANTrainConfig(data=str(data), stage=stage, model=model,
                                   kimg=SkrGANTrainConfig.kimg if kimg is None else kimg, batch=batch,
                                   seed=0 if seed is None else seed)
    train_skrgan(config, resume or out, resume=resume is not None, device=device, show_progress=not quiet)
