"""Training the vessel AAE (``retina layout train-aae``) and the sketch generator (``train-sketch``).

Each step: one autoencoder update (gamma * L1 reconstruction + fooling the code discriminator), then one code
discriminator update (N(0, I) draws against detached codes), as in Mahajan et al. sec. 3. The training maps
(vessel masks, or SkrGAN sketches extracted from the photographs) are small enough to hold in memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from retina.common.canonical import CanonicalDataset
from retina.common.checkpoint import load_module, rng_state, set_rng_state
from retina.common.dataset import resize_image, resize_masks
from retina.common.device import resolve_device
from retina.common.errors import RetinaError
from retina.common.fingerprint import fingerprint, fingerprint_reference
from retina.common.interrupt import checkpointed_steps
from retina.common.progress import progress_bar, summary
from retina.common.run import RunFolder
from retina.common.seeding import seed_everything
from retina.common.split import training_rows
from retina.layout.aae import AAE_KINDS, AAEConfig, VesselAAE


@dataclass
class AAETrainConfig:
    data: str = ""
    kind: str = "aae"  # "aae": vessel masks; "sketch": SkrGAN sketches of the photographs
    model: AAEConfig = field(default_factory=AAEConfig)
    kimg: float = 10.0  # thousands of training maps shown
    batch: int = 16
    lr: float = 2e-4  # Adam, betas (0.5, 0.999): the usual adversarial setting
    log_every: int = 10  # steps
    checkpoint_every: int = 200  # steps
    seed: int = 0


def load_training_maps(data: str | Path, res: int, kind: str) -> tuple[torch.Tensor, dict]:
    """float (N, 1, res, res) in {0, 1} of the split=train rows: the vessel channel, or the sketches of the
    photographs; and the fingerprint of those rows."""
    if kind not in AAE_KINDS:
        raise RetinaError(f"unknown vessel model kind '{kind}'; use one of {', '.join(AAE_KINDS)}")
    dataset = CanonicalDataset(data)
    if kind == "aae":
        dataset.require_channels(["vessels"], "training the vessel AAE")
    else:
        dataset.require_images("training the sketch generator (sketches are extracted from photographs)")
    rows = training_rows(dataset, f"train-{kind}")
    names = [s.name for s in rows]
    if kind == "aae":
        masks = torch.from_numpy(np.stack([dataset.load_masks(n, ["vessels"]) for n in names]))
        maps = resize_masks(masks.float(), res)
    else:
        from retina.layout.sketch import extract_sketch

        images = torch.stack([torch.from_numpy(dataset.load_image(n)).permute(2, 0, 1).float() / 255 for n in names])
        maps = extract_sketch(resize_image(images, res))[:, None].float()
    return maps, fingerprint([(dataset, rows)])


def train_aae(config: AAETrainConfig, out: str | Path, resume: bool = False, device: str = "auto",
              show_progress: bool = True) -> Path:
    """Train (or resume) an AAE run in ``out``; returns the path of ``last.safetensors``."""
    run_device = resolve_device(device)
    maps, training_set = load_training_maps(config.data, config.model.res, config.kind)  # before any output exists
    run = RunFolder(out, {"kind": config.kind, **asdict(config)}, resume=resume, training_set=training_set)
    reference = fingerprint_reference(training_set)
    seed_everything(config.seed)
    if not resume:
        config.model.train_fraction = round(float(maps.mean()), 6)
    model = VesselAAE(config.model).to(run_device)
    autoencoder_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    optim_ae = torch.optim.Adam(autoencoder_params, lr=config.lr, betas=(0.5, 0.999))
    optim_d = torch.optim.Adam(model.code_discriminator.parameters(), lr=config.lr, betas=(0.5, 0.999))
    images_seen, step = 0, 0
    if resume:
        last = run.load_last().expect(config.kind, "conv-aae")
        load_module(model, last.submodule("model"), last.path)
        optim_ae.load_state_dict(last.state["optim_ae"])
        optim_d.load_state_dict(last.state["optim_d"])
        images_seen, step = int(last.state["images_seen"]), int(last.state["step"])
        set_rng_state(last.state["rng"])

    def save(name: str) -> None:
        state = {"optim_ae": optim_ae.state_dict(), "optim_d": optim_d.state_dict(), "images_seen": images_seen,
                 "step": step, "rng": rng_state()}
        run.save(name, model.tensors(), {**model.checkpoint_config(config.kind), "training": asdict(config),
                                         "training_set": reference}, state)

    total = int(config.kimg * 1000)
    losses: dict[str, torch.Tensor] = {}
    model.train()
    with progress_bar(total, f"train-{config.kind}", enabled=show_progress) as bar:
        bar.advance(min(images_seen, total))
        # Ctrl-C/SIGTERM: `last` is saved between steps; the lambda reads the counter as it grows (late binding)
        for _ in checkpointed_steps(lambda: images_seen < total, lambda: save("last")):  # noqa: B023
            index = torch.randint(len(maps), (config.batch,))
            batch = maps[index].to(run_device)
            flip = torch.rand(len(batch), device=run_device) < 0.5  # left/right eye
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
            losses = model.losses(batch)
            optim_ae.zero_grad(set_to_none=True)
            losses["autoencoder"].backward()
            optim_ae.step()
            # The fooling term left gradients on the discriminator: clear them; its own loss uses detached codes.
            optim_d.zero_grad(set_to_none=True)
            losses["discriminator"].backward()
            optim_d.step()
            images_seen += len(batch)
            step += 1
            record = {k: float(v.detach()) for k, v in losses.items()}
            bar.advance(len(batch), rec=record["reconstruction"], d=record["discriminator"])
            if step % config.log_every == 0:
                run.log({"step": step, "kimg": images_seen / 1000, **record})
            if step % config.checkpoint_every == 0:
                save("last")
    save("last")
    final = {k: round(float(v.detach()), 4) for k, v in losses.items()}
    summary(f"trained {config.kind} for {images_seen / 1000:.2f} kimg ({step} steps): {final} -> {run.path}")
    return run.path / "last.safetensors"

