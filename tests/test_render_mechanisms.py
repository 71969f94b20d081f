"""Renderer mechanisms against values computed here from the papers' formulas: noise injection + AdaIN (DR-GAN
III-D after Huang & Belongie 2017, eq. 8), the grading space (III-D) and grade conditioning of render()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from retina.common.seeding import torch_generator
from retina.render.adain import NoiseAdaIN
from retina.render.config import RenderConfig
from retina.render.grading import GradingSpace
from retina.render.model import NetworkRenderer, build_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def _generators(seeds):
    return [torch_generator(s) for s in seeds]


def _instance_norm(h: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = h.mean(dim=(2, 3), keepdim=True)
    var = h.var(dim=(2, 3), unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + eps)


def _noise(seeds, channels, size):
    """Per-sample noise as the block draws it: one (channels, H, W) volume from each sample's generator."""
    return torch.stack([torch.randn((channels, size, size), generator=torch_generator(s)) for s in seeds])


def test_adain_is_instance_norm_scaled_by_one_plus_gamma_plus_beta():
    torch.manual_seed(1)
    block = NoiseAdaIN(8, style_dim=6)
    nn.init.normal_(block.affine.weight, std=0.5)
    nn.init.normal_(block.affine.bias, std=0.5)
    x, style, seeds = torch.randn(2, 8, 5, 5), torch.randn(2, 6), [3, 4]
    out = block(x, style, _generators(seeds))
    # reference: noise volume of channels // 4 concatenated, fused by the 1x1 conv, instance-normalised, then
    # AdaIN with (gamma, beta) = A(style): x * (1 + gamma) + beta
    h = F.conv2d(torch.cat([x, _noise(seeds, 2, 5)], dim=1), block.fuse.weight, block.fuse.bias)
    gamma_beta = style @ block.affine.weight.T + block.affine.bias
    gamma, beta = gamma_beta[:, :8, None, None], gamma_beta[:, 8:, None, None]
    torch.testing.assert_close(out, _instance_norm(h) * (1 + gamma) + beta, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out, _instance_norm(h) * gamma + beta, atol=1e-2)  # the x * gamma variant differs


def test_adain_starts_as_identity_and_without_style_uses_learned_affine():
    block = NoiseAdaIN(8, style_dim=6)  # zero-initialised affine: gamma = beta = 0
    x, seeds = torch.randn(2, 8, 5, 5), [0, 1]
    h = F.conv2d(torch.cat([x, _noise(seeds, 2, 5)], dim=1), block.fuse.weight, block.fuse.bias)
    torch.testing.assert_close(block(x, torch.randn(2, 6), _generators(seeds)), _instance_norm(h), rtol=1e-4,
                               atol=1e-5)
    plain = NoiseAdaIN(8)
    nn.init.normal_(plain.norm.weight)
    nn.init.normal_(plain.norm.bias)
    h = F.conv2d(torch.cat([x, _noise(seeds, 2, 5)], dim=1), plain.fuse.weight, plain.fuse.bias)
    expected = _instance_norm(h) * plain.norm.weight[:, None, None] + plain.norm.bias[:, None, None]
    torch.testing.assert_close(plain(x, None, _generators(seeds)), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="grading style"):
        block(x, None, _generators(seeds))


def test_adain_noise_is_per_sample():
    block = NoiseAdaIN(8, style_dim=0)
    x = torch.randn(1, 8, 5, 5).repeat(2, 1, 1, 1)
    same = block(x, None, _generators([7, 7]))
    torch.testing.assert_close(same[0], same[1])  # same seed, same input: same output
    other = block(x, None, _generators([7, 8]))
    torch.testing.assert_close(other[0], same[0])  # a sample's noise does not depend on its batch mates
    assert not torch.allclose(other[1], same[1], atol=1e-3)  # the noise reaches the output


# -- grading space and grade conditioning ---------------------------------------------------------------
DIM = 12


def fitted_space() -> tuple[GradingSpace, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    grades = torch.arange(5).repeat_interleave(8)
    features = torch.randn(40, DIM, generator=generator) * 0.3
    features[torch.arange(40), grades] += 3.0  # grade g sits along axis g
    space = GradingSpace(DIM, rank=4)
    space.fit(features, grades)
    return space, features, grades


def test_grading_space_samples_around_each_grades_mean():
    space, features, grades = fitted_space()
    for grade in (0, 3):
        draws = space.sample(torch.full((3000,), grade), _generators(range(3000)))
        reference = (features[grades == grade].mean(0) - features.mean(0)) / features.std(0)
        torch.testing.assert_close(draws.mean(0), reference, rtol=0, atol=0.1)


def grade_renderer() -> NetworkRenderer:
    torch.manual_seed(0)
    config = RenderConfig(arch="drgan", res=32, width=8, stage="coarse", residual_blocks=1, style_dim=8,
                          mapping_layers=2, covariance_rank=4)
    generator = build_generator(config, DIM)
    for module in generator.modules():  # the AdaIN affines start at the identity: give the style some reach
        if isinstance(module, NoiseAdaIN) and module.affine is not None:
            nn.init.normal_(module.affine.weight, std=0.5)
    space, _, _ = fitted_space()
    return NetworkRenderer(config, generator, space, torch.device("cpu"))


def test_grade_changes_render_and_grading_vector_same_grade_and_seed_do_not():
    renderer = grade_renderer()
    seen = []
    forward = renderer.forward

    def spy(masks, grading, generators):
        seen.append(grading.clone())
        return forward(masks, grading, generators)

    renderer.forward = spy
    masks = (torch.rand(1, len(renderer.channels), 16, 16, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    masks = masks.repeat(3, 1, 1, 1)
    images = renderer.render(masks, torch.tensor([0, 4, 0]), [5, 5, 5])
    vectors = seen[0]
    torch.testing.assert_close(images[0], images[2])  # same grade and seed: the same photograph
    torch.testing.assert_close(vectors[0], vectors[2])
    assert (images[0] - images[1]).abs().mean() > 1e-3  # another grade: another photograph
    # ... because the grading vector is drawn around the other grade's mean (axis 4 vs axis 0)
    assert vectors[1, 4] - vectors[0, 4] > 2 and vectors[0, 0] - vectors[1, 0] > 2
    again = renderer.render(masks[:1], torch.tensor([4]), [5])
    torch.testing.assert_close(again[0], images[1], rtol=0, atol=1e-5)
