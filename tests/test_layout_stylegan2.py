"""StyleGAN2 at the reference's capacity: --cfg presets against stylegan2-ada-pytorch's parameter counts, style
mixing, the path-length regulariser, resume with both on, and hard fakes reaching D."""

from __future__ import annotations

import pytest
import torch

from retina.cli import main
from retina.common.checkpoint import Checkpoint
from retina.layout.config import GENERATOR_PRESET_FIELDS, GeneratorConfig, cfg_preset
from retina.layout.losses import path_length_penalty
from retina.layout.stylegan import StyleGenerator, mix_styles

pytestmark = pytest.mark.usefixtures("one_thread")

CHANNELS7 = ["vessels", "od", "ma", "he", "ex", "se", "fov"]
# Measured 2026-12-03 by instantiating NVlabs/stylegan2-ada-pytorch (commit d72cc7d) training.networks.Generator
# outside this repository: z_dim=512, w_dim=512, c_dim=5 (the five grades), img_resolution=256, img_channels=7,
# mapping_kwargs num_layers (auto 2, paper256 8), channel_base 16384, channel_max 512 (train.py cfg_specs at 256 px).
REFERENCE_GENERATOR_PARAMS = {"auto": 23_466_750, "paper256": 25_042_686}
REFERENCE_SYNTHESIS_PARAMS = 22_676_222  # its G.synthesis alone, the same for both presets


def _preset_generator(cfg: str, res: int = 256, channels: list[str] = CHANNELS7) -> StyleGenerator:
    preset = cfg_preset(cfg, res)
    config = GeneratorConfig(res=res, channels=channels, cfg=cfg, **{k: preset[k] for k in GENERATOR_PRESET_FIELDS})
    with torch.device("meta"):  # 25 M parameters without allocating them
        return StyleGenerator(config)


@pytest.mark.parametrize("cfg", ["auto", "paper256"])
def test_faithful_presets_match_the_reference_parameter_count(cfg):
    generator = _preset_generator(cfg)
    ours = sum(p.numel() for p in generator.parameters())
    mapping = sum(p.numel() for p in generator.mapping_net.parameters()) + generator.embed.weight.numel()
    # the synthesis network is parameter for parameter the reference's; the grade embedding is an nn.Embedding
    # where the reference has a fully connected layer on one-hot labels (its 512 biases are the whole difference)
    assert ours - mapping == REFERENCE_SYNTHESIS_PARAMS
    assert abs(ours - REFERENCE_GENERATOR_PARAMS[cfg]) / REFERENCE_GENERATOR_PARAMS[cfg] < 1e-4
    assert generator.num_ws == 14  # the reference's num_ws at 256 px
    config = generator.config
    assert [config.feature_channels(r) for r in (4, 32, 64, 128, 256)] == [512, 512, 256, 128, 64]


def test_presets_differ_where_the_reference_does():
    assert cfg_preset("auto", 256)["mapping_layers"] == 2 and cfg_preset("paper256", 256)["mapping_layers"] == 8
    assert cfg_preset("auto", 512)["channel_base"] == 32768  # fmaps 1 from 512 px
    small = cfg_preset("small", 256)
    assert small["style_mixing"] == 0 and small["pl_weight"] == 0 and small["channel_base"] == 2048
    assert cfg_preset("paper256", 256)["style_mixing"] == 0.9 and cfg_preset("paper256", 256)["pl_weight"] == 2


def _tiny_generator() -> StyleGenerator:
    torch.manual_seed(0)
    config = GeneratorConfig(res=16, channels=["vessels", "ma"], channel_base=256, channel_max=16, z_dim=8, w_dim=8,
                             embed_dim=4)
    return StyleGenerator(config)


def test_style_mixing_feeds_two_ws_across_the_layers():
    generator = _tiny_generator()
    w, w_second = torch.randn(3, 8), torch.randn(3, 8)
    seen: list[torch.Tensor] = []  # the w each style affine receives, in the order the layers run
    affines = [layer.conv.affine for layer in generator.layers]
    affines += [to_mask.conv.affine for to_mask in generator.to_masks]
    hooks = [affine.register_forward_pre_hook(lambda _m, args: seen.append(args[0])) for affine in affines]
    generator.synthesis(mix_styles(w, w_second, generator.num_ws, 1.0, torch.Generator().manual_seed(1)))
    for hook in hooks:
        hook.remove()
    assert len(seen) == len(affines)
    firsts = [bool(torch.equal(s, w)) for s in seen]
    seconds = [bool(torch.equal(s, w_second)) for s in seen]
    assert all(a or b for a, b in zip(firsts, seconds, strict=True))
    assert firsts[0] and seconds[-1]  # the coarse layers take w, the fine ones the second w
    switch = firsts.index(False)
    assert all(firsts[:switch]) and all(seconds[switch:])
    # probability 0: every layer takes w (and a per-layer stack of one w draws what w alone draws)
    ws = mix_styles(w, w_second, generator.num_ws, 0.0, torch.Generator().manual_seed(1))
    assert ws.shape == (3, generator.num_ws, 8) and torch.equal(ws, w[:, None].expand_as(ws))
    torch.testing.assert_close(generator.synthesis(ws), generator.synthesis(w))
    # the cutoff is drawn from 1..num_ws-1, never all-second: over many draws both ends stay w / w_second
    cutoffs = set()
    for seed in range(60):
        mixed = mix_styles(w, w_second, generator.num_ws, 1.0, torch.Generator().manual_seed(seed))
        cutoffs.add(int(sum(torch.equal(mixed[:, i], w) for i in range(generator.num_ws))))
    assert min(cutoffs) >= 1 and max(cutoffs) <= generator.num_ws - 1 and len(cutoffs) > 3


def test_path_length_penalty_reaches_g_and_moves_its_running_mean():
    generator = _tiny_generator()
    z, grades = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    ws = generator.mapping(z, grades)[:, None].expand(-1, generator.num_ws, -1)
    images = generator.synthesis(ws)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0)) / 16
    running = torch.tensor(0.0)
    penalty, lengths = path_length_penalty(images, ws, running, 0.01, noise)
    assert penalty.shape == lengths.shape == (4,) and bool((lengths > 0).all())
    penalty.mean().backward()
    synthesis_grads = [p.grad for layer in generator.layers for p in layer.parameters() if p.grad is not None]
    assert synthesis_grads and any(float(g.abs().sum()) > 0 for g in synthesis_grads)
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in generator.mapping_net.parameters())
    moved = running.lerp(lengths.mean(), 0.01)
    assert float(moved) == pytest.approx(0.01 * float(lengths.mean()))
    # at its own mean the penalty only measures the spread of the lengths
    same, _ = path_length_penalty(generator.synthesis(ws), ws, lengths.mean(), 0.0, noise)
    torch.testing.assert_close(same.detach(), (lengths - lengths.mean()).square(), rtol=1e-4, atol=1e-6)


TRAIN = ["layout", "train", "--res", "16", "--batch", "4", "--channel-base", "512", "--channel-max", "16",
         "--z-dim", "8", "--w-dim", "8", "--mapping-layers", "2", "--device", "cpu", "--quiet", "--ada-kimg", "0.05",
         "--style-mixing", "0.9", "--pl-weight", "2"]


def test_resume_with_mixing_and_path_length_is_bit_exact(phantom, tmp_path):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    main([*TRAIN, "--data", str(phantom), "--kimg", "0.032", "--snapshot-kimg", "0.016", "--out", str(straight)])
    main([*TRAIN, "--data", str(phantom), "--kimg", "0.016", "--snapshot-kimg", "0.016", "--out", str(cut)])
    main(["layout", "train", "--resume", str(cut), "--kimg", "0.032", "--quiet", "--device", "cpu"])
    a, b = Checkpoint(straight / "last.safetensors"), Checkpoint(cut / "last.safetensors")
    assert a.config["train"]["style_mixing"] == 0.9 and a.config["train"]["pl_weight"] == 2
    assert a.config["generator"]["z_dim"] == 8 and a.config["generator"]["channel_base"] == 512
    assert a.state["pl_mean"] > 0 and a.state["pl_mean"] == b.state["pl_mean"]
    for name, tensor in a.tensors.items():
        assert torch.equal(tensor, b.tensors[name]), name
    logged = [line for line in (straight / "log.jsonl").read_text().splitlines() if '"pl"' in line]
    assert logged and any('"pl": null' not in line for line in logged)


def test_hard_fakes_reach_d_binary_with_a_gradient_to_g(phantom, tmp_path):
    """With --hard-fakes D is shown exactly the 0/1 masks sampling makes (here without blur and with ADA at p = 0,
    so nothing else touches them), and G still gets a gradient through the straight-through threshold."""
    from retina.layout.config import LayoutTrainConfig, TrainConfig
    from retina.layout.train import LayoutTrainer

    generator = GeneratorConfig(res=16, channel_base=512, channel_max=16, z_dim=8, w_dim=8)
    config = LayoutTrainConfig(data=str(phantom), out=str(tmp_path / "hard"), batch=4, kimg=0.004, device="cpu",
                               generator=generator, train=TrainConfig(hard_fakes=True, blur_sigma=0.0))
    trainer = LayoutTrainer(config, progress=False)
    shown: list[torch.Tensor] = []
    trainer.D.register_forward_pre_hook(lambda _m, args: shown.append(args[0].detach().clone()))
    grads: list[float] = []
    original_step = trainer.opt_g.step

    def step(*args, **kwargs):
        grads.append(sum(float(p.grad.abs().sum()) for p in trainer.G.parameters() if p.grad is not None))
        return original_step(*args, **kwargs)

    trainer.opt_g.step = step
    trainer.train_step()
    assert trainer.ada.p == 0.0
    g_inputs = shown[:2]  # two G steps, then D on reals and on fakes
    fake_for_d = shown[3]
    for tensor in (*g_inputs, fake_for_d):
        assert set(torch.unique(tensor).tolist()) <= {-1.0, 1.0}
    assert len(grads) == 2 and all(g > 0 for g in grads)
    trainer.close()


def test_checkpoints_written_with_a_width_load_with_the_same_channels():
    old = GeneratorConfig(res=64, channels=["vessels"]).to_dict()
    old.pop("channel_base"), old.pop("cfg")
    old["width"] = 16  # the field before channel_base: channels at 256 px
    config = GeneratorConfig.from_saved(old)
    assert config.channel_base == 4096 and config.feature_channels(64) == 64 and config.feature_channels(256) == 16
