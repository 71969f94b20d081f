"""Layout models behind one interface: ``LayoutSampler.sample(grades, seeds, res, truncation)``.

``procedural`` wraps the phantom's layout half (no checkpoint needed); ``stylegan`` and ``acgan`` load a
``retina layout train`` checkpoint (its EMA generator). Every sample is drawn from its own seed, so the same
seed gives the same mask whatever the batch. GAN masks are produced at the training resolution, upsampled
bilinearly as probabilities and thresholded at 0.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retina.common.checkpoint import Checkpoint, load_module
from retina.common.compile import compile_module
from retina.common.errors import RetinaError
from retina.common.schema import CHANNEL_INDEX, CHANNEL_NAMES, NUM_CHANNELS
from retina.common.seeding import torch_generator
from retina.layout.config import ARCHS, GeneratorConfig


class LayoutSampler(Protocol):
    name: str
    checkpoint_hash: str
    channels: tuple[str, ...]  # channels the model produces; the others come back all-False

    def sample(self, grades: list[int], seeds: list[int], res: int, truncation: float = 1.0) -> np.ndarray:
        """``bool (B, NUM_CHANNELS, res, res)`` in CHANNEL_NAMES order."""
        ...


def build_networks(config: GeneratorConfig) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for ``config.arch``."""
    if config.arch == "stylegan":
        from retina.layout.stylegan import ProjectionDiscriminator, StyleGenerator

        return StyleGenerator(config), ProjectionDiscriminator(config)
    if config.arch == "acgan":
        from retina.layout.acgan import ACDiscriminator, ACGenerator

        return ACGenerator(config), ACDiscriminator(config)
    raise RetinaError(f"--arch {config.arch}: unknown layout architecture; choose one of {', '.join(ARCHS)}")


def per_sample_latents(
    seeds: list[int], z_dim: int, device: torch.device
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """z (B, z_dim) and one generator per sample (it goes on to draw that sample's noise inputs)."""
    generators = [torch_generator(int(seed)) for seed in seeds]
    z = torch.stack([torch.randn(z_dim, generator=g) for g in generators]).to(device)
    return z, generators


def expand_channels(masks: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """``(B, len(channels), H, W)`` -> ``(B, NUM_CHANNELS, H, W)``: absent channels all-False."""
    full = np.zeros((masks.shape[0], NUM_CHANNELS, *masks.shape[2:]), dtype=bool)
    for i, channel in enumerate(channels):
        full[:, CHANNEL_INDEX[channel]] = masks[:, i]
    return full


class ProceduralLayout:
    """The phantom's procedural layout prior, as a model named ``procedural``."""

    name = "procedural"
    checkpoint_hash = ""
    channels = CHANNEL_NAMES

    def sample(self, grades: list[int], seeds: list[int], res: int, truncation: float = 1.0) -> np.ndarray:
        from retina.phantom.layout import sample_layout

        pairs = zip(grades, seeds, strict=True)
        return np.stack([sample_layout(int(g), res, int(s)).masks.astype(bool) for g, s in pairs])


class GanLayout:
    """A trained layout GAN (the EMA generator of a ``retina layout train`` checkpoint)."""

    def __init__(self, generator: nn.Module, config: GeneratorConfig, checkpoint_hash: str, device: torch.device,
                 channels_last: bool = True, compile: bool = False):
        # channels_last: measured 1.6x faster sampling on CPU (benchmarks/README.md); cuDNN prefers it too
        generator = generator.to(device).eval()
        if channels_last:
            generator = generator.to(memory_format=torch.channels_last)
        self.module = generator
        self.generator = compile_module(generator, compile)
        self.config = config
        self.name = config.arch
        self.checkpoint_hash = checkpoint_hash
        self.channels = tuple(config.channels)
        self.device = device

    @torch.no_grad()
    def logits(self, grades: list[int], seeds: list[int], truncation: float = 1.0) -> torch.Tensor:
        """Generator outputs (B, len(channels), res, res) at the training resolution, before the sigmoid."""
        z, generators = per_sample_latents(seeds, self.module.z_dim, self.device)
        labels = torch.as_tensor(grades, dtype=torch.long, device=self.device)
        return self.generator(z, labels, generators, truncation).float()

    def probabilities(self, grades: list[int], seeds: list[int], truncation: float = 1.0) -> torch.Tensor:
        """Sigmoid outputs (B, len(channels), res, res) at the training resolution."""
        return torch.sigmoid(self.logits(grades, seeds, truncation))

    def sample(self, grades: list[int], seeds: list[int], res: int, truncation: float = 1.0) -> np.ndarray:
        if len(grades) != len(seeds):
            raise ValueError("one seed per grade")
        logits = self.logits(grades, seeds, truncation)
        if res == logits.shape[-1]:
            masks = logits >= 0  # sigmoid >= 0.5, without a pass over the tensor for the sigmoid
        else:
            masks = F.interpolate(torch.sigmoid(logits), size=(res, res), mode="bilinear", align_corners=False) >= 0.5
        return expand_channels(masks.cpu().numpy(), self.channels)


def load_layout_model(checkpoint: str | Path | None, device: torch.device | str = "cpu",
                      channels_last: bool = True, compile: bool = False) -> LayoutSampler:
    """The procedural prior for ``None``, else the GAN in ``checkpoint`` (a file or a run folder).
    ``channels_last`` and ``compile`` are speed options of GAN sampling (the procedural prior has no network)."""
    if checkpoint is None:
        return ProceduralLayout()
    device = torch.device(device)
    loaded = Checkpoint(checkpoint).expect("layout")
    arch = loaded.config.get("arch")
    if arch not in ARCHS:
        raise RetinaError(f"{loaded.path}: a layout/{arch} checkpoint; sampling supports {', '.join(ARCHS)}")
    config = GeneratorConfig.from_saved(loaded.config["generator"])
    generator, _ = build_networks(config)
    load_module(generator, loaded.submodule("g_ema"), loaded.path)
    return GanLayout(generator, config, loaded.short_hash, device, channels_last, compile)


def untrained_layout_model(arch: str, res: int, device: torch.device | str = "cpu", seed: int = 0,
                           channels_last: bool = True, compile: bool = False, cfg: str = "small") -> GanLayout:
    """A randomly initialised GAN of preset ``cfg`` (default: the small one) producing every channel: for speed
    benchmarks and as the 'untrained' baseline of layout metrics (its name says so)."""
    from retina.layout.config import GENERATOR_PRESET_FIELDS, cfg_preset

    preset = cfg_preset(cfg, res)
    config = GeneratorConfig(arch=arch, res=res, channels=list(CHANNEL_NAMES), cfg=cfg,
                             **{k: preset[k] for k in GENERATOR_PRESET_FIELDS})
    torch.manual_seed(seed)
    generator, _ = build_networks(config)
    return GanLayout(generator, config, f"untrained-{arch}", torch.device(device), channels_last, compile)
