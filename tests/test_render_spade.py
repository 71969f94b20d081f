"""SPADE as Park et al. / NVlabs: parameter counts against the reference, structure, spectral norm, the
deterministic and VAE inputs, the PatchGAN discriminator, hinge loss, KL, and a --vae training run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from retina.common.schema import CHANNEL_NAMES
from retina.render.config import RenderConfig
from retina.render.discriminator import DOutput, MultiScalePatchDiscriminator, build_discriminator
from retina.render.losses import adversarial_loss
from retina.render.spade import SPADEGenerator, kld_loss

pytestmark = pytest.mark.usefixtures("one_thread")

# Recorded by instantiating NVlabs/SPADE (commit fecacc9, its sync_batchnorm submodule) from a copy outside the
# repository with label_nc L, ngf = ndf = W, crop_size R, num_upsampling_layers normal, norm_G
# spectralspadesyncbatch3x3, norm_D = norm_E = spectralinstance, n_layers_D 4, num_D 2, no_instance, z_dim 256:
# (L, W, R): (SPADEGenerator without vae, with --use_vae, MultiscaleDiscriminator, ConvEncoder)
NVLABS_PARAMETERS = {
    (10, 64, 256): (92_269_251, 109_018_819, 5_548_162, 10_463_424),
    (10, 64, 512): (92_269_251, 159_547_075, 5_548_162, 10_463_424),
    (7, 8, 256): (4_353_979, 6_451_131, 90_642, 622_936),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("key", list(NVLABS_PARAMETERS))
def test_parameter_counts_match_nvlabs(key):
    labels, width, res = key
    g_plain, g_vae, d, e = NVLABS_PARAMETERS[key]
    with torch.device("meta"):  # counting needs no memory
        plain = SPADEGenerator(labels, res, width)
        vae = SPADEGenerator(labels, res, width, vae=True)
        config = RenderConfig(arch="spade", res=res, width=width, channels=CHANNEL_NAMES[:labels])
        discriminator = build_discriminator(config)
    assert _count(plain) == g_plain
    assert _count(vae.encoder) == e
    assert _count(vae) - e == g_vae
    assert isinstance(discriminator, MultiScalePatchDiscriminator) and _count(discriminator) == d


def test_structure_seven_blocks_spectral_norm_and_first_layer():
    g = SPADEGenerator(4, 256, 8)
    assert len(g.blocks) == 7 and g.start == 8  # 'normal': five upsamplings from 1/32
    widths = [(b.conv_0.in_channels, b.conv_1.out_channels) for b in g.blocks]
    assert widths == [(128, 128)] * 3 + [(128, 64), (64, 32), (32, 16), (16, 8)]
    for block in g.blocks:
        for conv in [block.conv_0, block.conv_1] + ([block.conv_s] if block.learned_shortcut else []):
            assert torch.nn.utils.parametrize.is_parametrized(conv, "weight")  # spectral norm
    assert isinstance(g.fc, torch.nn.Conv2d) and g.fc.in_channels == 4  # masks into the first layer, no z
    assert isinstance(SPADEGenerator(4, 256, 8, vae=True).fc, torch.nn.Linear)
    d = MultiScalePatchDiscriminator(4, 8)
    sn = [torch.nn.utils.parametrize.is_parametrized(b[0], "weight") for b in d.discriminators[0].blocks]
    assert sn == [False, True, True, True] and d.discriminators[0].blocks[1][0].bias is None


def test_fused_modulation_equals_separate_spade_layers():
    """One stacked mlp_shared conv and one gamma|beta conv give what NVlabs' separate SPADE layers give."""
    torch.manual_seed(0)
    g = SPADEGenerator(3, 32, 8).eval()
    block = g.blocks[3]  # a block with a learned shortcut: three SPADE layers
    masks = (torch.rand(2, 3, 8, 8) > 0.5).float()
    x = torch.randn(2, block.norm_channels[0], 8, 8)
    mods = block.modulations(masks)
    for i, channels in enumerate(block.norm_channels):
        w, b = block.mlp_shared.weight[128 * i: 128 * (i + 1)], block.mlp_shared.bias[128 * i: 128 * (i + 1)]
        actv = F.relu(F.conv2d(masks, w, b, padding=1))
        conv = block.mlp_gamma_beta[i]
        gamma = F.conv2d(actv, conv.weight[:channels], conv.bias[:channels], padding=1)
        beta = F.conv2d(actv, conv.weight[channels:], conv.bias[channels:], padding=1)
        inp = torch.randn(2, channels, 8, 8)
        expected = F.instance_norm(inp) * (1 + gamma) + beta
        assert torch.allclose(block.modulate(i, inp, mods[i]), expected, atol=1e-5)
    assert block(x, masks).shape == (2, block.conv_1.out_channels, 8, 8)


def test_deterministic_without_vae_multimodal_with_it():
    torch.manual_seed(0)
    masks = (torch.rand(2, 4, 32, 32) > 0.8).float()
    seeds = [torch.Generator().manual_seed(s) for s in (1, 2)]
    plain = SPADEGenerator(4, 32, 8).eval()
    with torch.no_grad():
        a, _ = plain(masks, None, seeds)
        b, _ = plain(masks, None, [torch.Generator().manual_seed(s) for s in (3, 4)])
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b)  # no z: the masks alone decide
    vae = SPADEGenerator(4, 32, 8, vae=True).eval()
    with torch.no_grad():
        c, _ = vae(masks, None, seeds)
        d, _ = vae(masks, None, [torch.Generator().manual_seed(s) for s in (3, 4)])
        real = torch.rand(2, 3, 32, 32) * 2 - 1
        e, kld = vae(masks, None, seeds, real=real)
    assert not torch.allclose(c, d, atol=1e-4)  # different z, different image
    assert e.shape == (2, 3, 32, 32) and kld.ndim == 0 and kld >= 0


def test_kld_and_hinge_known_values():
    assert kld_loss(torch.zeros(3, 5), torch.zeros(3, 5)) == 0
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar): 0.5 * (1 + (e - 2)) summed, NVlabs sums over batch and dims
    assert torch.isclose(kld_loss(mu, logvar), torch.tensor(0.5 * (1.0 + torch.e - 2.0)))
    score = torch.tensor([[[[2.0, 0.5], [-1.0, -3.0]]]])
    out = [DOutput([], score, None)]
    assert torch.isclose(adversarial_loss(out, True, "hinge"), torch.tensor((0 + 0.5 + 2 + 4) / 4))
    assert torch.isclose(adversarial_loss(out, False, "hinge"), torch.tensor((3 + 1.5 + 0 + 0) / 4))
    assert torch.isclose(adversarial_loss(out, True, "hinge", for_discriminator=False), -score.mean())
    with pytest.raises(ValueError):
        adversarial_loss(out, False, "hinge", for_discriminator=False)


def test_patchgan_two_scales_patch_maps_and_features():
    d = MultiScalePatchDiscriminator(4, 8)
    outputs = d(torch.zeros(2, 4, 64, 64), torch.zeros(2, 3, 64, 64))
    assert len(outputs) == 2 and all(len(o.features) == 4 and o.grade_logits is None for o in outputs)
    # kernel 4 padding 2: 64 -> 33 -> 17 -> 9 (stride 2) -> 10 (stride 1) -> 11 (score)
    assert [tuple(o.score.shape) for o in outputs] == [(2, 1, 11, 11), (2, 1, 7, 7)]


def test_spade_defaults_follow_nvlabs():
    config = RenderConfig(arch="spade")
    assert (config.adversarial, config.discriminator, config.num_discriminators) == ("hinge", "patchgan", 2)
    assert (config.lr, config.lr_d, config.betas) == (1e-4, 4e-4, (0.0, 0.9))
    assert (config.lambda_fm, config.lambda_perc, config.lambda_kld) == (10.0, 10.0, 0.05)
    drgan = RenderConfig()
    assert (drgan.adversarial, drgan.discriminator, drgan.num_discriminators) == ("lsgan", "drgan", 3)


def test_vae_training_run_logs_kl_and_renders(phantom, tmp_path):
    import json

    from retina.cli import main
    from retina.render.model import load_renderer

    run = tmp_path / "vae"
    main(["render", "train", "--data", str(phantom), "--out", str(run), "--arch", "spade", "--vae", "--steps", "2",
          "--every", "2", "--res", "32", "--width", "8", "--batch", "2", "--device", "cpu", "--no-perceptual"])
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(r["loss_kld"] >= 0 for r in logged if "loss_g" in r) and any("loss_kld" in r for r in logged)
    renderer = load_renderer(run)
    assert renderer.config.spade_vae and renderer.config.adversarial == "hinge"
    images = renderer.render(torch.zeros(2, len(renderer.channels), 32, 32), None, [0, 1])
    assert images.shape == (2, 3, 32, 32) and not torch.allclose(images[0], images[1])  # z from each seed


def test_inference_preparation_bakes_spectral_norm_and_bf16_weights():
    from retina.render.model import prepare_for_inference

    torch.manual_seed(0)
    g = SPADEGenerator(4, 32, 8).eval()
    masks = (torch.rand(2, 4, 32, 32) > 0.8).float()

    def twin() -> SPADEGenerator:  # not a deepcopy: copies share their parametrized classes (see the docstring)
        other = SPADEGenerator(4, 32, 8).eval()
        other.load_state_dict(g.state_dict())
        return other

    with torch.no_grad():
        expected = g(masks)[0]
        baked = prepare_for_inference(twin())
        assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in baked.modules())
        assert torch.allclose(baked(masks)[0], expected, atol=1e-5)
        half = prepare_for_inference(twin(), bf16=True)
        assert half.blocks[0].conv_0.weight.dtype == torch.bfloat16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert (half(masks)[0].float() - expected).abs().mean() < 0.05


def test_inference_path_channels_last_and_folded_gain_equal_training_path():
    """`retina render`'s path (spectral norm baked, SPADE's 1 of (1 + gamma) folded into the gamma biases,
    channels_last) renders what the training-time module renders, and the fold happens once."""
    from retina.render.model import prepare_for_inference

    torch.manual_seed(0)
    g = SPADEGenerator(4, 64, 8).eval()
    with torch.no_grad():
        for block in g.blocks:  # biases away from 0, so that a fold applied twice (or not at all) shows
            for conv in block.mlp_gamma_beta:
                conv.bias.normal_(0, 0.3)
    masks = (torch.rand(2, 4, 64, 64) > 0.8).float()
    twin = SPADEGenerator(4, 64, 8).eval()
    twin.load_state_dict(g.state_dict())
    bias = twin.blocks[1].mlp_gamma_beta[0].bias.detach().clone()
    prepared = prepare_for_inference(twin)
    prepared_again = prepare_for_inference(prepared)
    channels = prepared.blocks[1].norm_channels[0]
    folded = prepared_again.blocks[1].mlp_gamma_beta[0].bias.detach()
    assert torch.allclose(folded[:channels], bias[:channels] + 1) and torch.equal(folded[channels:], bias[channels:])
    fast = prepared_again.to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = g(masks)[0]
        got = fast(masks.contiguous(memory_format=torch.channels_last))[0]
    assert torch.allclose(got, expected, atol=1e-5)


def test_bad_render_options_name_the_option():
    from retina.common.errors import RetinaError

    with pytest.raises(RetinaError, match="--gan-loss wgan"):
        RenderConfig(adversarial="wgan")
    with pytest.raises(RetinaError, match="--discriminator"):
        RenderConfig(discriminator="global")
    with pytest.raises(RetinaError, match="--vae"):
        RenderConfig(arch="drgan", spade_vae=True)
    with pytest.raises(RetinaError, match="--spade-norm"):
        RenderConfig(arch="spade", spade_norm="group")
