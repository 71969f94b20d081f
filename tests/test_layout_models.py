"""Layout networks: shapes, ranges, per-seed determinism, ADA p direction, truncation, a tiny overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retina.common.checkpoint import save_checkpoint
from retina.common.errors import RetinaError
from retina.common.schema import CHANNEL_INDEX, NUM_CHANNELS
from retina.layout.ada import AdaptiveAugment
from retina.layout.config import GeneratorConfig
from retina.layout.losses import discriminator_loss, generator_loss, grade_loss, r1_penalty
from retina.layout.model import GanLayout, ProceduralLayout, build_networks, load_layout_model

CHANNELS = ["vessels", "od", "ma"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(arch: str, res: int = 16) -> GeneratorConfig:
    return GeneratorConfig(arch=arch, res=res, channels=CHANNELS, channel_base=2048, channel_max=32, z_dim=16,
                           w_dim=16)


@pytest.mark.parametrize("arch", ["stylegan", "acgan"])
def test_shapes_range_and_same_seed_same_mask_in_any_batch(arch):
    generator, discriminator = build_networks(_config(arch))
    sampler = GanLayout(generator, _config(arch), "abc", torch.device("cpu"))
    probabilities = sampler.probabilities([0, 4, 2], [11, 22, 33])
    assert probabilities.shape == (3, 3, 16, 16)
    assert 0 <= float(probabilities.min()) and float(probabilities.max()) <= 1
    alone = sampler.probabilities([4], [22])
    torch.testing.assert_close(alone[0], probabilities[1], rtol=1e-5, atol=1e-6)
    other_seed = sampler.probabilities([4], [23])
    assert not torch.allclose(alone, other_seed)
    masks = sampler.sample([0, 4], [11, 22], res=32)
    assert masks.shape == (2, NUM_CHANNELS, 32, 32) and masks.dtype == bool
    assert not masks[:, CHANNEL_INDEX["he"]].any() and not masks[:, CHANNEL_INDEX["fov"]].any()
    logits, grade_logits = discriminator(probabilities * 2 - 1, torch.tensor([0, 4, 2]))
    assert logits.shape == (3,)
    assert grade_logits.shape == (3, 5)  # both discriminators classify the grade (stylegan: by default)


@pytest.mark.parametrize("arch", ["stylegan", "acgan"])
def test_sampling_speed_options_do_not_change_masks(arch):
    """channels_last (the sampling default) and the logit threshold at the training resolution give the masks
    that the plain layout and sigmoid >= 0.5 give."""
    config = _config(arch)
    generator, _ = build_networks(config)
    plain = GanLayout(generator, config, "abc", torch.device("cpu"), channels_last=False)
    reference = (plain.probabilities([1, 3], [5, 6]) >= 0.5).numpy()
    for channels_last in (False, True):
        sampler = GanLayout(generator, config, "abc", torch.device("cpu"), channels_last=channels_last)
        masks = sampler.sample([1, 3], [5, 6], res=16)
        assert np.array_equal(masks[:, [CHANNEL_INDEX[c] for c in CHANNELS]], reference)


def _phase_share(x: torch.Tensor) -> float:
    """Share of the variance of ``x`` (B, C, H, W) explained by the 2x2 pixel phase: a checkerboard's signature."""
    phases = torch.stack([x[..., i::2, j::2].mean(dim=(-2, -1)) for i in (0, 1) for j in (0, 1)])  # (4, B, C)
    return float(phases.var(dim=0, unbiased=False).mean() / x.var(dim=(-2, -1), unbiased=False).mean())


def test_stylegan_upsampling_layers_draw_no_checkerboard():
    """A stride-2 transposed convolution left a grid in trained vessel masks; the upsampling layers must not."""
    config = GeneratorConfig(arch="stylegan", res=32, channels=CHANNELS, channel_base=1024, channel_max=32, z_dim=16,
                             w_dim=16)
    generator, _ = build_networks(config)
    with torch.no_grad():
        w = generator.mapping(torch.randn(8, 16), torch.zeros(8, dtype=torch.long))
        # a nearly constant input: where a stride-2 transposed convolution prints its kernel as a 2x2 pattern
        # (phase share 0.9 for 3x3 and 4x4 kernels, measured), a smooth upsampler passes the constant on (0.005)
        x = torch.randn(8, 32, 1, 1).expand(-1, -1, 16, 16) + 0.1 * torch.randn(8, 32, 16, 16)
        up = next(layer for layer in generator.layers if layer.conv.up and layer.resolution == 32)
        assert _phase_share(up(x, w, None)) < 0.02
        checker = torch.randn(8, 32, 32, 32) + 3 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(16, 16)
        assert _phase_share(checker) > 0.5  # the measure sees a checkerboard when there is one


@pytest.mark.parametrize("channels_last", [False, True])
def test_to_mask_matmul_equals_modulated_conv_plus_skip(channels_last):
    import torch.nn.functional as F

    from retina.layout.stylegan import ToMask

    to_mask = ToMask(8, 10, 16)
    x, w, skip = torch.randn(3, 8, 16, 16), torch.randn(3, 16), torch.randn(3, 10, 16, 16)
    expected = F.conv2d(x * to_mask.conv.affine(w)[:, :, None, None], to_mask.conv.weight * to_mask.conv.scale) + skip
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(to_mask(x, w, skip), expected, rtol=1e-5, atol=1e-5)


def test_compile_flag_reports_a_missing_backend_in_one_line(monkeypatch):
    from retina.common.compile import compile_module

    module = torch.nn.Linear(2, 2)
    assert compile_module(module, False) is module

    def unavailable(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(torch, "compile", unavailable)
    with pytest.raises(RetinaError, match="--compile"):
        compile_module(module, True)


def test_truncation_zero_gives_the_grade_mean_w():
    generator, _ = build_networks(_config("stylegan"))
    generator.w_avg.copy_(torch.randn_like(generator.w_avg))
    z, grades = torch.randn(4, 16), torch.tensor([0, 1, 4, 4])
    torch.testing.assert_close(generator.mapping(z, grades, truncation=0.0), generator.w_avg[grades])
    half = generator.mapping(z, grades, truncation=0.5)
    full = generator.mapping(z, grades)
    torch.testing.assert_close(half, generator.w_avg[grades] + 0.5 * (full - generator.w_avg[grades]))
    before, before4 = generator.w_avg[2].clone(), generator.w_avg[4].clone()
    generator.update_w_avg(full, grades, beta=0.5)
    torch.testing.assert_close(generator.w_avg[4], 0.5 * before4 + 0.5 * full[2:].mean(dim=0))
    torch.testing.assert_close(generator.w_avg[2], before)  # grade 2 not in the batch: unchanged


def test_ada_p_rises_when_d_overfits_and_falls_otherwise():
    ada = AdaptiveAugment(target=0.6, interval=4, kimg=0.1)
    for _ in range(4):
        ada.accumulate(torch.full((8,), 3.0))  # D confident on every real: r_t = 1 > 0.6
    ada.update(images_seen=32)
    assert ada.p == pytest.approx(0.32)
    for _ in range(4):
        ada.accumulate(torch.tensor([1.0, -1.0] * 4))  # r_t = 0 < 0.6
    ada.update(images_seen=32)
    assert ada.p == pytest.approx(0.0)
    ada.update(images_seen=32)  # nothing accumulated: no change
    assert ada.p == 0.0


def test_ada_augments_differentiably_and_is_identity_at_p0():
    ada = AdaptiveAugment()
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    assert ada(x) is x
    ada.p = 1.0
    y = ada(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_losses():
    big = torch.full((4,), 8.0)
    assert discriminator_loss(big, -big, smoothing=0.9) > discriminator_loss(big, -big, smoothing=1.0) + 0.5
    assert generator_loss(big) < generator_loss(-big)
    assert grade_loss(None, torch.tensor([1])) == 0
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    assert r1_penalty((3 * x).sum(dim=(1, 2, 3)), x) == pytest.approx(9 * 16)


@pytest.mark.parametrize("arch", ["stylegan", "acgan"])
def test_tiny_overfit_loss_drops(arch):
    torch.manual_seed(0)
    generator, _ = build_networks(_config(arch))
    target = torch.zeros(4, 3, 16, 16)
    target[:, 0, 4:12, 7:9] = 1
    target[:, 1, 6:10, 2:6] = 1
    target[1:, 2, 12, 12] = 1
    z, grades = torch.randn(4, 16), torch.tensor([0, 1, 2, 3])
    optimiser = torch.optim.Adam(generator.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(generator(z, grades), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


def test_hard_fakes_show_d_the_thresholded_masks_with_the_sigmoid_gradient():
    from retina.layout.train import as_sampled

    logits = torch.tensor([-2.0, -0.1, 0.0, 3.0], requires_grad=True)
    probabilities = torch.sigmoid(logits)
    hard = as_sampled(probabilities, hard=True)
    assert hard.tolist() == [0.0, 0.0, 1.0, 1.0]  # what `retina layout sample` thresholds them to
    (hard * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    slope = probabilities * (1 - probabilities)
    assert torch.allclose(logits.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]) * slope.detach())
    assert as_sampled(probabilities, hard=False) is probabilities


def test_soften_blurs_the_chosen_channels_only():
    from retina.layout.train import soften

    masks = torch.zeros(1, 3, 9, 9)
    masks[:, :, 4, 4] = 1
    some = soften(masks, 1.0, torch.tensor([2]))
    assert torch.equal(some[:, :2], masks[:, :2] * 2 - 1)  # untouched, mapped to [-1, 1]
    assert -1 < float(some[0, 2, 4, 5]) and float(some[0, 2, 4, 4]) < 1
    every = soften(masks, 1.0)
    assert torch.allclose(every[:, 2], some[:, 2]) and torch.allclose(every[:, 0], some[:, 2])


def test_stylegan_discriminator_grade_classifier_is_optional():
    masks, grades = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 4])
    _, with_head = build_networks(_config("stylegan"))  # the default
    logits, grade_logits = with_head(masks, grades)
    assert logits.shape == (4,) and grade_logits.shape == (4, 5)
    saved = _config("stylegan").to_dict()
    del saved["d_classifier"]  # a checkpoint written before the option: its D had no classifier
    old = GeneratorConfig.from_saved(saved)
    assert not old.d_classifier
    _, plain = build_networks(old)
    logits, grade_logits = plain(masks, grades)
    assert logits.shape == (4,) and grade_logits is None
    assert not any(name.startswith("classifier") for name in plain.state_dict())


def test_procedural_sampler_is_deterministic():
    model = ProceduralLayout()
    first = model.sample([4, 0], [5, 6], 32)
    assert first.shape == (2, NUM_CHANNELS, 32, 32) and first.dtype == bool
    np.testing.assert_array_equal(model.sample([0], [6], 32)[0], first[1])
    assert model.name == "procedural" and load_layout_model(None).name == "procedural"


def test_load_refuses_other_kinds(tmp_path):
    save_checkpoint(tmp_path / "render", {"x": torch.zeros(1)}, {"kind": "render", "arch": "spade"})
    with pytest.raises(RetinaError, match="layout"):
        load_layout_model(tmp_path / "render.safetensors")
    with pytest.raises(RetinaError, match="not found"):
        load_layout_model(tmp_path / "missing.safetensors")
