"""Layout GAN mechanisms against values computed here from the papers' formulas: StyleGAN2's modulated /
demodulated convolution (Karras et al. 2020b, eqs. 1-3) with per-pixel noise, and ADA's p controller (Karras et
al. 2020a, sec. 3) on a discriminator whose sign is rigged. The p trajectory inside a real training run is checked
in tests/test_resume_exact.py (p moves by exactly one step at the 4th D step)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from retina.common.seeding import torch_generator
from retina.layout.ada import AdaptiveAugment
from retina.layout.stylegan import ModulatedConv, StyleLayer, ToMask

pytestmark = pytest.mark.usefixtures("one_thread")


def fused_modulated_conv(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool):
    """StyleGAN2 eqs. 1-3 with one weight per sample: w'_oik = s_i w_oik, w''_oik = w'_oik / sqrt(sum w'^2 + 1e-8)."""
    out = []
    for b in range(len(x)):
        w = weight * styles[b][None, :, None, None]
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        out.append(F.conv2d(x[b : b + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(out)


def _randomised(module: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


@pytest.mark.parametrize("up", [False, True])
def test_modulated_conv_equals_per_sample_demodulated_weights(up):
    conv = _randomised(ModulatedConv(6, 5, 3, w_dim=4, up=up))
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
    out, demodulation = conv(x, w)
    styles = w @ (conv.affine.weight * conv.affine.scale).T + conv.affine.bias * conv.affine.lr_mul
    expected = fused_modulated_conv(x, conv.weight * conv.scale, styles, demodulate=True)
    if up:
        expected = F.interpolate(expected, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out * demodulation, expected, rtol=1e-4, atol=1e-5)
    # demodulated output does not depend on the styles' scale (the point of eq. 3): scale A's output by 50
    with torch.no_grad():
        conv.affine.weight.mul_(50)
        conv.affine.bias.mul_(50)
    out_big, demodulation_big = conv(x, w)
    assert not torch.allclose(out_big, out)
    torch.testing.assert_close(out_big * demodulation_big, expected, rtol=1e-4, atol=1e-5)


def test_style_layer_noise_zero_init_then_scaled_per_pixel_noise():
    layer = _randomised(StyleLayer(6, 5, w_dim=4, resolution=8))
    x, w = torch.randn(2, 6, 8, 8), torch.randn(2, 4)
    seeds = [11, 12]
    with torch.no_grad():
        layer.noise_strength.zero_()
    quiet = layer(x, w, [torch_generator(s) for s in seeds])
    torch.testing.assert_close(quiet, layer(x, w, [torch_generator(s + 100) for s in seeds]))  # zero: no noise
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
    out = layer(x, w, [torch_generator(s) for s in seeds])
    # reference: lrelu(conv'' (x) + bias * demod + strength * noise) * sqrt(2), one noise plane per sample,
    # broadcast over channels (the bias sits inside the convolution, before demodulation: see StyleLayer)
    conv = layer.conv
    styles = w @ (conv.affine.weight * conv.affine.scale).T + conv.affine.bias * conv.affine.lr_mul
    weight = conv.weight * conv.scale
    modulated = fused_modulated_conv(x, weight, styles, demodulate=True)
    demod = torch.rsqrt((styles[:, None, :, None, None] * weight[None]).square().sum(dim=(2, 3, 4)) + 1e-8)
    noise = torch.stack([torch.randn((1, 8, 8), generator=torch_generator(s)) for s in seeds])
    expected = F.leaky_relu(modulated + layer.bias[None, :, None, None] * demod[:, :, None, None] + 0.7 * noise,
                            0.2) * math.sqrt(2)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out, quiet, atol=1e-3)


def test_to_mask_adds_a_modulated_1x1_conv_onto_the_skip_image():
    to_mask = _randomised(ToMask(6, 3, w_dim=4))
    x, w, skip = torch.randn(2, 6, 8, 8), torch.randn(2, 4), torch.randn(2, 3, 8, 8)
    conv = to_mask.conv
    styles = w @ (conv.affine.weight * conv.affine.scale).T + conv.affine.bias * conv.affine.lr_mul
    expected = skip + fused_modulated_conv(x, conv.weight * conv.scale, styles, demodulate=False)
    torch.testing.assert_close(to_mask(x, w, skip), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(to_mask(x.contiguous(memory_format=torch.channels_last), w, skip), expected,
                               rtol=1e-4, atol=1e-5)


# -- ADA ----------------------------------------------------------------------------------------------
def reference_p(p: float, rt: float, target: float, images: int, kimg: float) -> float:
    """StyleGAN2-ADA's controller: p += sign(r_t - target) * images / (kimg * 1000), clamped to [0, 1]."""
    sign = (rt > target) - (rt < target)
    return min(1.0, max(0.0, p + sign * images / (kimg * 1000)))


def test_ada_p_follows_the_rigged_sign_and_clamps_at_one_and_zero():
    ada = AdaptiveAugment(target=0.6, interval=4, kimg=0.1)  # 32 images per update: steps of 0.32
    p, trajectory = 0.0, []
    # D always right on reals (r_t = 1) for 5 updates, then always wrong (r_t = -1) for 5
    for sign in [1.0] * 5 + [-1.0] * 5:
        for _ in range(4):
            ada.accumulate(torch.full((8, 1), sign))
        rt = ada.update(32)
        assert rt == sign
        p = reference_p(p, rt, 0.6, 32, 0.1)
        trajectory.append(ada.p)
        assert ada.p == pytest.approx(p, abs=1e-12)
    assert trajectory[:4] == pytest.approx([0.32, 0.64, 0.96, 1.0]) and trajectory[4] == 1.0  # clamp at 1
    assert trajectory[5:] == pytest.approx([0.68, 0.36, 0.04, 0.0, 0.0])  # clamp at 0


def test_ada_rt_is_the_mean_sign_and_at_target_p_holds():
    ada = AdaptiveAugment(target=0.5, interval=4, kimg=1.0, p=0.3)
    ada.accumulate(torch.tensor([1.0, 2.0, 3.0, -4.0]))  # signs 1, 1, 1, -1: r_t = 0.5 = target
    assert ada.update(16) == 0.5 and ada.p == 0.3
    ada.accumulate(torch.tensor([5.0, -1.0, -2.0, -3.0]))  # r_t = -0.5 < target: p falls by 16/1000
    assert ada.update(16) == -0.5 and ada.p == pytest.approx(0.3 - 0.016)
    assert ada.update(16) == -0.5 and ada.p == pytest.approx(0.3 - 0.016)  # nothing accumulated: no change


def test_ada_augments_only_when_p_is_positive():
    x = torch.rand(4, 3, 16, 16)
    ada = AdaptiveAugment()
    state = torch.get_rng_state()
    assert ada(x) is x and torch.equal(torch.get_rng_state(), state)  # p = 0: identity, no random draws
    ada.p = 1.0
    out = ada(x)
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_equalised_layers_scale_weights_at_run_time():
    """StyleGAN's equalised learning rate: weights stored N(0, 1), multiplied by lr_mul / sqrt(fan_in) in the
    forward pass; the activation is leaky ReLU 0.2 times sqrt(2)."""
    from retina.layout.stylegan import EqualConv2d, EqualLinear

    linear = _randomised(EqualLinear(6, 4, lr_mul=0.01, act=True))
    x = torch.randn(3, 6)
    pre = x @ (linear.weight * 0.01 / math.sqrt(6)).T + linear.bias * 0.01
    torch.testing.assert_close(linear(x), F.leaky_relu(pre, 0.2) * math.sqrt(2), rtol=1e-5, atol=1e-6)
    conv = _randomised(EqualConv2d(3, 2, 3))
    image = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(conv(image), F.conv2d(image, conv.weight / math.sqrt(27), conv.bias, padding=1),
                               rtol=1e-5, atol=1e-6)
