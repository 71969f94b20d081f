"""The trained-renderer interface used by ``retina render`` and ``retina generate``.

A :class:`Renderer` turns mask stacks into photographs: ``render(masks, grades, seeds)`` with masks
(B, len(channels), res, res) in {0, 1} gives images (B, 3, res, res) in [-1, 1]. Each sample's noise and
grading vector come from its own ``torch.Generator`` seeded by its seed, so a sample is reproducible
whatever batch it is rendered in. ``grades=None`` lets DR-GAN's encoder grade head pick the grade
(section III-E). Inference runs without autograd; bf16 autocast and channels_last are construction flags.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.utils import parametrize

from retina.common.checkpoint import Checkpoint, load_module
from retina.common.compile import compile_module
from retina.common.errors import RetinaError
from retina.common.seeding import torch_generator
from retina.render.config import RenderConfig
from retina.render.grading import GradingSpace
from retina.render.spade import SPADEResBlock


@runtime_checkable
class Renderer(Protocol):
    name: str
    checkpoint_hash: str | None
    channels: tuple[str, ...]
    res: int

    def render(self, masks: torch.Tensor, grades: torch.Tensor | None, seeds: list[int]) -> torch.Tensor: ...


def build_generator(config: RenderConfig, grading_dim: int) -> nn.Module:
    """The generator a config describes (``grading_dim`` 0: no adaptive grading manipulation)."""
    channels = len(config.channels)
    if config.arch == "spade":
        from retina.render.spade import build_spade

        return build_spade(config)
    from retina.render.drgan import DRGANGenerator

    return DRGANGenerator(
        channels, config.width, fine=config.stage == "fine", residual_blocks=config.residual_blocks,
        sca=config.sca, sca_reduction=config.sca_reduction, sca_max_grid=config.sca_max_grid,
        grading_dim=grading_dim, style_dim=config.style_dim, mapping_layers=config.mapping_layers,
        upsample=config.upsample, synthesis_order=config.synthesis_order,
        sca_channel_energy=config.sca_channel_energy,
    )


def prepare_for_inference(generator: nn.Module, bf16: bool = False) -> nn.Module:
    """Bake spectral norm into plain weights (W / sigma(W) as eval mode computes it, once instead of per call)
    and SPADE's unit gain into its gamma biases; for bf16, store the conv and linear weights in bf16 so that
    autocast does not re-cast every weight on every call (measured: a quarter of SPADE's bf16 time on CPU).
    Norm layers keep float32 statistics.
    In place. Not for a ``copy.deepcopy`` whose original stays in use: torch gives a module and its deep copies
    one parametrized class, and removing the parametrization from one removes it from the class of all."""
    for module in list(generator.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    for module in generator.modules():
        if isinstance(module, SPADEResBlock):
            module.fold_unit_gain()
    if bf16:
        for module in generator.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                module.to(torch.bfloat16)
    return generator


def build_space(config: RenderConfig, grading_dim: int) -> GradingSpace | None:
    if not grading_dim:
        return None
    return GradingSpace(grading_dim, config.covariance_rank, diagonal=config.covariance == "diag")


class NetworkRenderer:
    """A DR-GAN or SPADE generator (EMA weights) with its grading space, ready to render."""

    def __init__(self, config: RenderConfig, generator: nn.Module, space: GradingSpace | None,
                 device: torch.device, checkpoint_hash: str | None = None, amp: bool = False,
                 channels_last: bool = False, compile: bool = False):
        self.config = config
        self.name = config.arch
        self.checkpoint_hash = checkpoint_hash
        self.channels = tuple(config.channels)
        self.res = config.output_res
        self.device = torch.device(device)
        self.amp = amp
        self.channels_last = channels_last
        self.generator = prepare_for_inference(generator.to(self.device).eval().requires_grad_(False), amp)
        if channels_last:
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.forward = compile_module(self.generator, compile)
        self.space = space.to(self.device) if space is not None else None

    def _autocast(self):
        if not self.amp:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @property
    def seen_grades(self) -> tuple[int, ...] | None:
        """The grades its grading space was fitted on (None: no grading space); others it never saw in training."""
        if self.space is None:
            return None
        return tuple(g for g, n in enumerate(self.space.count.tolist()) if n > 0)

    @torch.no_grad()
    def predict_grades(self, masks: torch.Tensor) -> torch.Tensor:
        """DR-GAN III-E: the encoder's grade head picks the grade whose grading space is sampled."""
        if not hasattr(self.generator, "encode"):
            return torch.zeros(masks.shape[0], dtype=torch.long, device=self.device)
        with self._autocast():
            _, logits = self.generator.encode(masks.to(self.device).float())
        return logits.float().argmax(dim=1)

    @torch.no_grad()
    def render(self, masks: torch.Tensor, grades: torch.Tensor | None, seeds: list[int]) -> torch.Tensor:
        expected = (len(self.channels), self.res, self.res)
        if masks.ndim != 4 or tuple(masks.shape[1:]) != expected:
            raise RetinaError(
                f"renderer {self.name} needs masks (B, {expected[0]}, {self.res}, {self.res}) for channels "
                f"{', '.join(self.channels)}; got {tuple(masks.shape)}"
            )
        if len(seeds) != masks.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for {masks.shape[0]} mask sets")
        masks = masks.to(self.device).float()
        if self.channels_last:
            masks = masks.contiguous(memory_format=torch.channels_last)
        generators = [torch_generator(int(seed), self.device) for seed in seeds]
        grading = None
        if self.space is not None:
            if grades is None:
                grades = self.predict_grades(masks)
            grades = grades.to(self.device).long()
            if grades.min() < 0 or grades.max() > 4:
                raise RetinaError(f"grade {int(grades.max() if grades.max() > 4 else grades.min())} is outside 0-4")
            grading = self.space.sample(grades, generators)
        with self._autocast():
            images, _ = self.forward(masks, grading, generators)
        return images.float().clamp(-1, 1).contiguous()


def load_renderer(checkpoint: str | Path, device: torch.device | str = "cpu", amp: bool = False,
                  channels_last: bool = False, compile: bool = False) -> NetworkRenderer:
    """Load a ``retina render train`` checkpoint (a run folder, NAME or NAME.safetensors) for inference."""
    ckpt = Checkpoint(checkpoint).expect("render")
    config = RenderConfig.from_dict(ckpt.config)
    grading_dim = int(ckpt.config.get("grading_dim", 0))
    generator = build_generator(config, grading_dim)
    weights = ckpt.submodule("g_ema") or ckpt.submodule("g")
    load_module(generator, weights, ckpt.path)
    space = build_space(config, grading_dim)
    if space is not None:
        load_module(space, ckpt.submodule("space"), ckpt.path)
    return NetworkRenderer(config, generator, space, torch.device(device), ckpt.short_hash, amp, channels_last,
                           compile)
