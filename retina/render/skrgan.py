"""SkrGAN's colour render mapping (Zhang et al. 2019, sec. 2.3): G_P turns a sketch draft into a colour
fundus photograph, trained on (sketch, photograph) pairs against a discriminator D_P that sees the pair.

Eq. 2: ``L_adv`` = log D_P(x, y) + log(1 - D_P(G_P(y), y)) and ``L_1`` = λ ||G_P(y) - x||_1 with λ = 100;
Adam with lr 0.0002 for G_P and D_P (sec. 3). G_P's backbone is U-Net (the paper's citation: Ronneberger et
al., :class:`retina.bench.unet.UNet`, with a tanh output); D_P is pix2pix's 70x70 PatchGAN on the
concatenated (photograph, sketch), which the paper's conditional D_P(x, y) follows. Not given in the paper, so
ours: the PatchGAN, Adam betas (0.5, 0.999) (pix2pix), BatchNorm in the U-Net.

At inference (``retina generate --vessels sketch``, ``retina render --masks``) the sketch travels in the
``vessels`` mask channel, as SkrGAN's Table 2 uses the generated sketches as vessel labels. G_P sees nothing
else: no lesions, no grade (SkrGAN is unconditional).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from retina.bench.unet import UNet, UNetConfig
from retina.common.checkpoint import Checkpoint, load_model, module_tensors
from retina.common.errors import RetinaError

KIND = "sketch-render"
ARCH = "skrgan-unet"
SKETCH_CHANNEL = "vessels"


@dataclass
class ColourRenderConfig:
    res: int = 512  # SkrGAN sec. 3: images resized to 512 x 512
    width: int = 64  # U-Net first-stage channels (Ronneberger et al.)
    d_width: int = 64  # PatchGAN first-layer channels (pix2pix)
    l1_weight: float = 100.0  # λ, SkrGAN sec. 3
    lr: float = 0.0002  # SkrGAN sec. 3 (G_P and D_P)
    betas: tuple[float, float] = (0.5, 0.999)  # pix2pix

    def __post_init__(self) -> None:
        if self.res < 32 or self.res % 16:  # U-Net: 4 halvings; the PatchGAN's 4x4 layers need >= 32 px
            raise RetinaError(f"--res {self.res}: the colour renderer needs a multiple of 16, at least 32")
        self.betas = tuple(self.betas)


class PatchDiscriminator(nn.Module):
    """pix2pix's 70x70 PatchGAN: C64-C128-C256-C512 (4x4 convolutions), one realness logit per patch."""

    def __init__(self, in_channels: int, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels = width
        for i, stride in enumerate((2, 2, 1)):
            out = width * 2 ** (i + 1)
            layers += [nn.Conv2d(channels, out, 4, stride, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ColourRenderMapping(nn.Module):
    """G_P and D_P with Eq. 2's losses; batches are (photographs in [-1, 1], sketches in {0, 1})."""

    def __init__(self, config: ColourRenderConfig | None = None):
        super().__init__()
        self.config = c = config or ColourRenderConfig()
        self.generator = UNet(UNetConfig(in_channels=1, out_channels=3, width=c.width))
        self.discriminator = PatchDiscriminator(3 + 1, c.d_width)

    def render(self, sketches: torch.Tensor) -> torch.Tensor:
        """Sketches (B, 1, H, W) in {0, 1} -> photographs (B, 3, H, W) in [-1, 1]."""
        return torch.tanh(self.generator(sketches))

    def discriminator_loss(self, images: torch.Tensor, sketches: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fakes = self.render(sketches)
        real = self.discriminator(torch.cat([images, sketches], dim=1))
        fake = self.discriminator(torch.cat([fakes, sketches], dim=1))
        return {"d": F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))}

    def generator_loss(self, images: torch.Tensor, sketches: torch.Tensor) -> dict[str, torch.Tensor]:
        fakes = self.render(sketches)
        fake = self.discriminator(torch.cat([fakes, sketches], dim=1))
        adversarial = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        l1 = F.l1_loss(fakes, images)
        return {"g": adversarial + self.config.l1_weight * l1, "l1": l1.detach()}

    def tensors(self) -> dict[str, torch.Tensor]:
        return module_tensors("model", self)

    def checkpoint_config(self) -> dict:
        return {"kind": KIND, "arch": ARCH, "model": asdict(self.config), "channels": [SKETCH_CHANNEL]}


class SketchRenderer:
    """The trained G_P behind the renderer interface of ``retina render`` and ``retina generate``."""

    name = "skrgan"
    draws_from_sketch = True  # `retina generate` pairs it with the sketch generator (--vessels sketch)
    channels = (SKETCH_CHANNEL,)

    def __init__(self, model: ColourRenderMapping, device: torch.device, checkpoint_hash: str | None = None,
                 channels_last: bool = False):
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.res = model.config.res
        self.checkpoint_hash = checkpoint_hash
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def render(self, masks: torch.Tensor, grades: torch.Tensor | None, seeds: list[int]) -> torch.Tensor:
        """``masks`` (B, 1, res, res): the sketch; ``grades`` and ``seeds`` are unused (G_P is deterministic
        and unconditional)."""
        if masks.ndim != 4 or tuple(masks.shape[1:]) != (1, self.res, self.res):
            raise RetinaError(f"renderer skrgan needs sketches (B, 1, {self.res}, {self.res}) in the "
                              f"'{SKETCH_CHANNEL}' channel; got {tuple(masks.shape)}")
        masks = masks.to(self.device).float()
        if self.channels_last:
            masks = masks.contiguous(memory_format=torch.channels_last)
        return self.model.render(masks).float().clamp(-1, 1).contiguous()


def load_colour_renderer(path: str | Path, device: torch.device | str = "cpu") -> tuple[ColourRenderMapping,
                                                                                      Checkpoint]:
    """A trained colour render mapping (``retina render train-sketch``)."""
    return load_model(path, KIND, ARCH, ColourRenderConfig, ColourRenderMapping, "a colour renderer", device)


def is_colour_renderer(checkpoint: Checkpoint) -> bool:
    return checkpoint.config.get("kind") == KIND
