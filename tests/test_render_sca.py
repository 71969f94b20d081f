"""SCA (DR-GAN III-B after DANet): both branches against the formulas written out in plain torch, the softmax
axes, attention at the feature map's own resolution, its place in G_m, and the legacy (pre-issue-13) paths."""

from __future__ import annotations

import pytest
import torch

from retina.common.schema import NUM_CHANNELS
from retina.render.drgan import DRGANGenerator
from retina.render.sca import SpatialChannelAttention, channel_attention

pytestmark = pytest.mark.usefixtures("one_thread")


def _plain_spatial(module: SpatialChannelAttention, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax(Q K^T) V at every position of x, with the (N, N) map held in memory."""
    b, c, h, w = x.shape
    q = module.query(x).flatten(2).transpose(1, 2)  # (B, N, C/d)
    k = module.key(x).flatten(2)  # (B, C/d, N)
    v = module.value(x).flatten(2).transpose(1, 2)  # (B, N, C)
    attention = torch.softmax(q @ k, dim=dim)  # row i: how much position i attends to each position j
    return (attention @ v).transpose(1, 2).reshape(b, c, h, w)


def _danet_channel(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """DANet's CAM_Module: energy = X X^T, energy_new = max(energy) - energy, softmax, attention @ X."""
    b, c, h, w = x.shape
    flat = x.view(b, c, -1)
    energy = torch.bmm(flat, flat.permute(0, 2, 1))
    energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
    attention = torch.softmax(energy_new, dim=dim)
    return torch.bmm(attention, flat).view(b, c, h, w)


def test_spatial_branch_is_plain_softmax_attention_over_keys():
    torch.manual_seed(0)
    module = SpatialChannelAttention(16, reduction=4)
    x = torch.randn(2, 16, 6, 6)
    got = module.spatial(x)
    assert torch.allclose(got, _plain_spatial(module, x), atol=1e-5)
    # softmax over the query axis instead would give something else: this test fails if the axis is wrong
    assert not torch.allclose(got, _plain_spatial(module, x, dim=-2), atol=1e-3)


def test_spatial_attention_runs_at_the_feature_maps_own_resolution():
    # 48 x 48 = 2304 positions: more than the old 32 x 32 pooled grid, and every one attends to every one
    torch.manual_seed(0)
    module = SpatialChannelAttention(8, reduction=8)
    x = torch.randn(1, 8, 48, 48)
    got = module.spatial(x)
    assert got.shape == x.shape
    assert torch.allclose(got, _plain_spatial(module, x), atol=1e-5)
    # changing a single position changes what the attention produces at other positions (no pooling away)
    y = x.clone()
    y[..., 10, 10] += 5.0
    assert not torch.allclose(module.spatial(y)[..., 30, 30], got[..., 30, 30], atol=1e-6)


def test_channel_branch_is_danets_formula_with_max_subtraction():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 5)
    got = channel_attention(x)
    assert torch.allclose(got, _danet_channel(x), atol=1e-5)
    assert not torch.allclose(got, _danet_channel(x, dim=-2), atol=1e-3)  # wrong softmax axis differs
    # not divided by N: the legacy energy / N is a different, flatter attention
    assert not torch.allclose(got, channel_attention(x, "mean"), atol=1e-3)
    # numerically safe where exp(energy) would overflow (energies of order 1e6)
    big = channel_attention(x * 300.0)
    assert torch.isfinite(big).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = channel_attention(x.bfloat16())
    assert torch.allclose(mixed.float(), got, atol=0.1)


def test_sca_is_identity_at_init_and_mixes_both_branches():
    torch.manual_seed(0)
    module = SpatialChannelAttention(16, reduction=8)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(module(x), x)
    with torch.no_grad():
        module.gamma_spatial.fill_(1.0)
        module.gamma_channel.fill_(1.0)
    expected = x + module.spatial_out(_plain_spatial(module, x)) + module.channel_out(_danet_channel(x))
    assert torch.allclose(module(x), expected, atol=1e-4)


def test_sca_runs_before_each_upsampling_of_g_m():
    """Paper: SCA at 80, 160, 320 px of a 640 px G_m, i.e. 1/8, 1/4, 1/2, with 8w, 4w, 2w channels."""
    g = DRGANGenerator(NUM_CHANNELS, width=8, fine=False, residual_blocks=1).eval()
    seen = []
    for block in g.synthesis:
        block.attention.register_forward_hook(lambda m, inputs, out: seen.append(tuple(out.shape[1:])))
    with torch.no_grad():
        image, _ = g(torch.zeros(1, NUM_CHANNELS, 64, 64))
    assert seen == [(64, 8, 8), (32, 16, 16), (16, 32, 32)]
    assert image.shape == (1, 3, 64, 64)
    assert [b.attention.query.out_channels for b in g.synthesis] == [64 // 8, 32 // 16, max(1, 16 // 32)]


def test_legacy_order_and_pooled_grid_still_available():
    g = DRGANGenerator(NUM_CHANNELS, width=8, fine=False, residual_blocks=1, synthesis_order="legacy",
                       sca_max_grid=4, sca_channel_energy="mean").eval()
    seen = []
    for block in g.synthesis:
        block.attention.register_forward_hook(lambda m, inputs, out: seen.append(out.shape[-1]))
    with torch.no_grad():
        g(torch.zeros(1, NUM_CHANNELS, 64, 64))
    assert seen == [16, 32, 64]  # after each upsampling
    module = g.synthesis[0].attention
    x = torch.randn(1, module.value.in_channels, 16, 16)
    pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4)
    upsampled = torch.nn.functional.interpolate(_plain_spatial(module, pooled), size=(16, 16), mode="bilinear")
    assert torch.allclose(module.spatial(x), upsampled, atol=1e-5)


def test_checkpoints_from_before_issue_13_load_with_legacy_sca(tmp_path):
    from retina.common.checkpoint import module_tensors, save_checkpoint
    from retina.render.config import RenderConfig
    from retina.render.model import build_generator, load_renderer

    old = RenderConfig(res=32, width=8, residual_blocks=1, synthesis_order="legacy", sca_max_grid=32,
                       sca_channel_energy="mean")
    saved = {"kind": "render", **old.to_dict(), "grading_dim": 0}
    del saved["synthesis_order"], saved["sca_channel_energy"]  # keys that old checkpoints lack
    save_checkpoint(tmp_path / "old", module_tensors("g_ema", build_generator(old, 0)), saved)
    renderer = load_renderer(tmp_path / "old.safetensors")
    assert renderer.config.synthesis_order == "legacy" and renderer.config.sca_channel_energy == "mean"
    assert renderer.render(torch.zeros(1, len(renderer.channels), 32, 32), None, [0]).shape == (1, 3, 32, 32)
    assert RenderConfig().synthesis_order == "paper" and RenderConfig().sca_max_grid == 0
