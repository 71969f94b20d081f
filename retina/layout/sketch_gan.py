"""SkrGAN's sketch guidance module (Zhang et al. 2019, sec. 2.2): a GAN, G_S and D_S, that learns the sketch
drafts extracted from photographs (:func:`retina.layout.sketch.extract_sketch`) and draws new ones from noise.

The paper uses PGGAN (Karras et al. 2018) as G_S's backbone, and so do we, layer for layer: a latent z
(pixel-normalised) -> a dense 4x4 block -> per doubling of resolution nearest up-sampling and two 3x3
convolutions with leaky ReLU and pixel norm -> a 1x1 "toRGB" (here one sketch channel); D_S mirrors it with
1x1 "fromRGB", two 3x3 convolutions and average pooling per halving, the minibatch standard-deviation
channel and a 4x4 block. Every layer has PGGAN's equalised learning rate. Channels follow PGGAN's rule
``min(fmap_base / 2**stage, fmap_max)``; Adam lr 0.001 is the paper's, betas (0, 0.99) PGGAN's.

Deviations, for CPU-scale training: no progressive growing (every resolution trains from the start, so no
fade-in); the loss is Eq. 1's log-likelihood GAN in its non-saturating form rather than PGGAN's WGAN-GP; the
latent code l of Eq. 1 (z ⊙ l) is a plain Gaussian z, as in PGGAN.

``sample(seeds, size)`` gives binary sketches: G_S's output > 0 (D_S sees reals in {-1, 1}), with the threshold
moved where 0 would keep less than half or more than twice the training drafts' mean sketch fraction (an
undertrained G_S then still draws sparse sketches rather than blobs or nothing).
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

from retina.common.checkpoint import Checkpoint, load_model, module_tensors
from retina.common.errors import RetinaError
from retina.common.seeding import torch_generator

KIND = "sketch"
ARCH = "skrgan-sketch-pggan"


@dataclass
class SketchGANConfig:
    res: int = 128
    latent: int = 512  # PGGAN
    fmap_base: int = 8192  # PGGAN: channels at stage s (4 px is stage 1) = min(fmap_base / 2**s, fmap_max)
    fmap_max: int = 512
    lr: float = 0.001  # SkrGAN sec. 3 (G_S and D_S)
    betas: tuple[float, float] = (0.0, 0.99)  # PGGAN
    # Mean sketch fraction of the training drafts, set by the trainer (see the module docstring).
    train_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.res < 8 or self.res & (self.res - 1):
            raise RetinaError(f"--res {self.res}: the sketch generator needs a power of two >= 8")
        self.betas = tuple(self.betas)

    def channels(self, res: int) -> int:
        return max(1, min(self.fmap_base // (2 ** int(math.log2(res) - 1)), self.fmap_max))

    @property
    def resolutions(self) -> list[int]:
        return [2**k for k in range(2, int(math.log2(self.res)) + 1)]


class EqualConv2d(nn.Module):
    """PGGAN's equalised learning rate: weights drawn from N(0, 1), scaled by He's constant at run time."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = 1 / math.sqrt(cin * kernel * kernel)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = 1 / math.sqrt(cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def _pixel_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class SketchGenerator(nn.Module):
    """G_S: z (B, latent) -> sketch logits (B, 1, res, res) (> 0: a sketch pixel)."""

    def __init__(self, config: SketchGANConfig):
        super().__init__()
        self.config = c = config
        first = c.channels(4)
        self.dense = EqualLinear(c.latent, first * 16)
        self.conv4 = EqualConv2d(first, first, 3, padding=1)
        self.blocks = nn.ModuleList()
        for low, high in zip(c.resolutions[:-1], c.resolutions[1:], strict=True):
            self.blocks.append(nn.ModuleList([EqualConv2d(c.channels(low), c.channels(high), 3, padding=1),
                                              EqualConv2d(c.channels(high), c.channels(high), 3, padding=1)]))
        self.to_sketch = EqualConv2d(c.channels(c.res), 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(_pixel_norm(z)).view(len(z), -1, 4, 4)
        x = _pixel_norm(_act(x))
        x = _pixel_norm(_act(self.conv4(x)))
        for first, second in self.blocks:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = _pixel_norm(_act(first(x)))
            x = _pixel_norm(_act(second(x)))
        return self.to_sketch(x)


class SketchDiscriminator(nn.Module):
    """D_S: sketches (B, 1, res, res) in [-1, 1] -> realness logits (B, 1)."""

    def __init__(self, config: SketchGANConfig):
        super().__init__()
        c = config
        self.from_sketch = EqualConv2d(1, c.channels(c.res), 1)
        self.blocks = nn.ModuleList()
        for high, low in zip(reversed(c.resolutions[1:]), reversed(c.resolutions[:-1]), strict=True):
            self.blocks.append(nn.ModuleList([EqualConv2d(c.channels(high), c.channels(high), 3, padding=1),
                                              EqualConv2d(c.channels(high), c.channels(low), 3, padding=1)]))
        last = c.channels(4)
        self.conv4 = EqualConv2d(last + 1, last, 3, padding=1)  # +1: the minibatch standard deviation
        self.dense = EqualLinear(last * 16, last)
        self.out = EqualLinear(last, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _act(self.from_sketch(x))
        for first, second in self.blocks:
            x = F.avg_pool2d(_act(second(_act(first(x)))), 2)
        # PGGAN's minibatch standard deviation: one extra channel, so D can see a batch lacking variety.
        spread = x.std(dim=0, unbiased=False).mean().expand(len(x), 1, *x.shape[-2:])
        x = _act(self.conv4(torch.cat([x, spread], dim=1)))
        return self.out(_act(self.dense(x.flatten(1))))


class SketchGAN(nn.Module):
    """G_S and D_S with Eq. 1's losses; ``batch`` holds the training drafts in {0, 1}."""

    def __init__(self, config: SketchGANConfig | None = None):
        super().__init__()
        self.config = config or SketchGANConfig()
        self.generator = SketchGenerator(self.config)
        self.discriminator = SketchDiscriminator(self.config)

    def _fakes(self, count: int, device: torch.device) -> torch.Tensor:
        return self.generator(torch.randn(count, self.config.latent, device=device))

    def discriminator_loss(self, sketches: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fakes = self._fakes(len(sketches), sketches.device)
        real = self.discriminator(sketches * 2 - 1)
        fake = self.discriminator(fakes)
        return {"d": F.softplus(-real).mean() + F.softplus(fake).mean()}

    def generator_loss(self, sketches: torch.Tensor) -> dict[str, torch.Tensor]:
        fake = self.discriminator(self._fakes(len(sketches), sketches.device))
        return {"g": F.softplus(-fake).mean()}

    @torch.no_grad()
    def sample_logits(self, seeds: Sequence[int], size: int | None = None) -> torch.Tensor:
        """G_S's output (B, size, size) for z ~ N(0, I), one generator per seed."""
        device = next(self.parameters()).device
        z = torch.stack([torch.randn(self.config.latent, generator=torch_generator(int(s), "cpu")) for s in seeds])
        was_training = self.training
        self.eval()
        logits = self.generator(z.to(device))
        self.train(was_training)
        if size is not None and size != self.config.res:
            logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        return logits[:, 0]

    def sample(self, seeds: Sequence[int], size: int | None = None) -> np.ndarray:
        """Binary sketches bool (B, size, size)."""
        logits = self.sample_logits(seeds, size)
        threshold = torch.zeros(len(logits), device=logits.device)
        fraction = self.config.train_fraction
        if fraction > 0:
            flat = logits.flatten(1).float()
            denser = torch.quantile(flat, max(0.0, 1 - 2 * fraction), dim=1)
            sparser = torch.quantile(flat, 1 - fraction / 2, dim=1)
            threshold = torch.maximum(torch.minimum(threshold, sparser), denser)
        return (logits > threshold.view(-1, 1, 1)).cpu().numpy()

    def tensors(self) -> dict[str, torch.Tensor]:
        return module_tensors("model", self)

    def checkpoint_config(self) -> dict:
        return {"kind": KIND, "arch": ARCH, "model": asdict(self.config)}


def load_sketch_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[SketchGAN, Checkpoint]:
    """A trained sketch guidance module (``retina layout train-sketch``)."""
    config = Checkpoint(path).config
    if config.get("kind") == KIND and config.get("arch") != ARCH:
        raise RetinaError(f"{path}: a sketch checkpoint of an older kind ({config.get('arch')}, "
                          "the AAE on sketches); train SkrGAN's sketch generator with `retina layout train-sketch`")
    return load_model(path, KIND, ARCH, SketchGANConfig, SketchGAN, "a sketch generator", device)


class SketchLayout:
    """G_S as the first step of ``retina generate --vessels sketch``: layouts whose only channel is the sketch
    (in ``vessels``). SkrGAN is unconditional: the grade is ignored and not written."""

    unconditional = True
    channels = ("vessels",)

    def __init__(self, checkpoint: str | Path, device: torch.device | str = "cpu"):
        self.model, loaded = load_sketch_generator(checkpoint, device)
        self.name = "skrgan-sketch"
        self.checkpoint_hash = loaded.short_hash
        self.checkpoint_path = loaded.path

    def sample(self, grades: Sequence[int], seeds: Sequence[int], res: int, truncation: float = 1.0) -> np.ndarray:
        from retina.common.schema import CHANNEL_NAMES

        masks = np.zeros((len(seeds), len(CHANNEL_NAMES), res, res), dtype=bool)
        masks[:, CHANNEL_NAMES.index("vessels")] = self.model.sample(seeds, size=res)
        return masks
