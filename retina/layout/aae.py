"""Adversarial autoencoder for vessel trees (Mahajan et al.): a convolutional encoder to a 128-d code, a
decoder back to a vessel map, and a code discriminator that pushes the codes towards N(0, I), so that
decoding z ~ N(0, I) draws new trees.

The encoder is stochastic by default, as in Mahajan et al. sec. 5 (after Costa et al. 2018) and Makhzani et al.'s
"Gaussian posterior" AAE: the convolutional features go to a 512-d vector and two dense heads give mu and the
log-variance of q(z | x); the code is drawn with the reparameterisation trick, z = mu + exp(log_var / 2) * eps
(Mahajan et al. eq. 5 writes sqrt(sigma) with sigma the variance; the log keeps it positive). ``encoder =
"deterministic"`` is the plain z = f(x) encoder (what checkpoints written before this option hold). The code
discriminator sees the drawn codes, so it matches the aggregated posterior q(z) to the prior.
Any power-of-two resolution from 8 px works; Mahajan et al. train at 256 px (``--res 256``).

The same model learns SkrGAN sketches (``kind="sketch"``): only the training data differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retina.common.checkpoint import Checkpoint, load_module, module_tensors
from retina.common.errors import RetinaError
from retina.common.seeding import torch_generator

AAE_KINDS = ("aae", "sketch")
ENCODERS = ("stochastic", "deterministic")
ARCH = "conv-aae"


@dataclass
class AAEConfig:
    res: int = 128
    latent: int = 128  # Mahajan et al. sec. 4: 128 gave the best trees among 16-256
    width: int = 16  # channels at full resolution, doubled per halving
    max_width: int = 256
    bottom: int = 4  # spatial size where the code is flattened
    recon_weight: float = 100.0  # gamma, the L1 reconstruction weight (Mahajan et al. eq. 3)
    # L1 on sparse binary maps is minimised by the per-pixel median, i.e. all background, whenever the decoder is
    # unsure: a small binary cross-entropy term keeps calibrated vessel probabilities (our addition).
    bce_weight: float = 1.0
    # Mean vessel (or sketch) fraction of the training maps, set by the trainer; sampling never thresholds a map
    # above the level that would keep this fraction, so a still-blurry decoder draws trees rather than nothing.
    train_fraction: float = 0.0
    encoder: str = "stochastic"  # "stochastic" (mu, sigma and the reparameterisation trick) or "deterministic"
    encoder_hidden: int = 512  # Mahajan et al.: the features become a 512-d vector before the mu / sigma heads

    def __post_init__(self) -> None:
        if self.res < self.bottom * 2 or self.res & (self.res - 1):
            raise RetinaError(f"--res {self.res}: the AAE needs a power of two >= {self.bottom * 2}")
        if self.encoder not in ENCODERS:
            raise RetinaError(f"--encoder {self.encoder}: choose one of {', '.join(ENCODERS)}")

    @classmethod
    def from_saved(cls, saved: dict) -> AAEConfig:
        """The config of a checkpoint; those written before ``encoder`` existed hold a deterministic encoder."""
        return cls(**{"encoder": "deterministic", **saved})

    @property
    def stages(self) -> int:
        return int(math.log2(self.res // self.bottom))

    def channels(self, stage: int) -> int:
        """Width at ``res / 2**stage``."""
        return min(self.width * 2**stage, self.max_width)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
    )


class Encoder(nn.Module):
    """``forward(x) -> (z, mu, log_var)``; the deterministic encoder returns ``(z, z, None)``."""

    def __init__(self, config: AAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, config.channels(0), 3, padding=1), nn.LeakyReLU(0.2)]
        for stage in range(config.stages):
            layers.append(_down(config.channels(stage), config.channels(stage + 1)))
        self.features = nn.Sequential(*layers)
        flat = config.channels(config.stages) * config.bottom**2
        self.stochastic = config.encoder == "stochastic"
        if self.stochastic:
            self.hidden = nn.Sequential(nn.Linear(flat, config.encoder_hidden), nn.LeakyReLU(0.2))
            self.mu = nn.Linear(config.encoder_hidden, config.latent)
            self.log_var = nn.Linear(config.encoder_hidden, config.latent)
        else:
            self.code = nn.Linear(flat, config.latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        features = self.features(x).flatten(1)
        if not self.stochastic:
            z = self.code(features)
            return z, z, None
        hidden = self.hidden(features)
        mu, log_var = self.mu(hidden), self.log_var(hidden)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)  # reparameterisation: gradients reach mu, sigma
        return z, mu, log_var


class Decoder(nn.Module):
    def __init__(self, config: AAEConfig):
        super().__init__()
        self.config = config
        bottom_width = config.channels(config.stages)
        self.project = nn.Linear(config.latent, bottom_width * config.bottom**2)
        self.blocks = nn.Sequential(
            *[_up(config.channels(stage + 1), config.channels(stage)) for stage in reversed(range(config.stages))]
        )
        self.out = nn.Conv2d(config.channels(0), 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1, res, res)."""
        c = self.config
        x = F.leaky_relu(self.project(z), 0.2).view(len(z), c.channels(c.stages), c.bottom, c.bottom)
        return self.out(self.blocks(x))


class CodeDiscriminator(nn.Module):
    def __init__(self, config: AAEConfig, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(config.latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VesselAAE(nn.Module):
    def __init__(self, config: AAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.code_discriminator = CodeDiscriminator(config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(code, reconstruction logits)`` for vessel maps ``x`` (B, 1, res, res) in {0, 1}; the code is a draw
        from q(z | x) with the stochastic encoder."""
        z, _, _ = self.encoder(x)
        return z, self.decoder(z)

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Autoencoder phase: gamma * L1 reconstruction + fooling the code discriminator; and the
        discriminator phase on detached codes against draws from N(0, I)."""
        z, logits = self(x)
        reconstruction = F.l1_loss(torch.sigmoid(logits), x)
        calibration = F.binary_cross_entropy_with_logits(logits, x)
        fooling = F.binary_cross_entropy_with_logits(self.code_discriminator(z), torch.ones(len(x), 1, device=x.device))
        prior = torch.randn_like(z)
        real_score, fake_score = self.code_discriminator(prior), self.code_discriminator(z.detach())
        discriminator = F.binary_cross_entropy_with_logits(real_score, torch.ones_like(real_score)) + \
            F.binary_cross_entropy_with_logits(fake_score, torch.zeros_like(fake_score))
        return {
            "autoencoder": self.config.recon_weight * reconstruction + self.config.bce_weight * calibration + fooling,
            "reconstruction": reconstruction.detach(),
            "discriminator": discriminator,
        }

    @torch.no_grad()
    def sample_probabilities(self, seeds: Sequence[int], size: int | None = None) -> torch.Tensor:
        """Vessel probabilities (B, size, size) decoded from z ~ N(0, I), one generator per seed."""
        device = next(self.parameters()).device
        z = torch.stack([
            torch.randn(self.config.latent, generator=torch_generator(int(seed), "cpu")) for seed in seeds
        ]).to(device)
        was_training = self.training
        self.eval()
        probabilities = torch.sigmoid(self.decoder(z))
        self.train(was_training)
        if size is not None and size != self.config.res:
            probabilities = F.interpolate(probabilities, size=(size, size), mode="bilinear", align_corners=False)
        return probabilities[:, 0]

    def sample(self, seeds: Sequence[int], size: int | None = None) -> np.ndarray:
        """Vessel masks bool (B, size, size): decoded probabilities thresholded at 0.5, or lower where 0.5 would
        keep less than the training maps' vessel fraction (see ``AAEConfig.train_fraction``)."""
        probabilities = self.sample_probabilities(seeds, size)
        threshold = torch.full((len(probabilities),), 0.5, device=probabilities.device)
        if self.config.train_fraction > 0:
            matched = torch.quantile(probabilities.flatten(1), 1 - self.config.train_fraction, dim=1)
            threshold = torch.minimum(threshold, matched)
        return (probabilities > threshold.view(-1, 1, 1)).cpu().numpy()

    def tensors(self) -> dict[str, torch.Tensor]:
        return module_tensors("model", self)

    def checkpoint_config(self, kind: str) -> dict:
        return {"kind": kind, "arch": ARCH, "model": asdict(self.config)}


def load_aae(path: str | Path, kind: str = "aae", device: torch.device | str = "cpu") -> tuple[VesselAAE, Checkpoint]:
    """Load a trained AAE or sketch generator; refuses another kind of checkpoint with one line."""
    if kind not in AAE_KINDS:
        raise RetinaError(f"unknown vessel model kind '{kind}'; use one of {', '.join(AAE_KINDS)}")
    checkpoint = Checkpoint(path).expect(kind, ARCH)
    try:
        config = AAEConfig.from_saved(checkpoint.config["model"])
    except (KeyError, TypeError) as error:
        raise RetinaError(f"{checkpoint.path}: config does not describe an AAE ({error})") from None
    model = VesselAAE(config)
    load_module(model, checkpoint.submodule("model"), checkpoint.path)
    return model.to(device).eval(), checkpoint
