"""SkrGAN's two stages: sketch drafts, the sketch generator G_S, the colour renderer G_P, `--vessels sketch`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.layout.sketch import SketchConfig, extract_sketch, load_sketch_pairs
from retina.layout.sketch_gan import SketchGAN, SketchGANConfig, load_sketch_generator
from retina.render.skrgan import ColourRenderConfig, ColourRenderMapping

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny networks: a second thread only waits


def test_sketch_extraction_finds_a_vessel_and_nothing_else():
    """A bright disc (the field of view) crossed by one dark vertical vessel: the draft marks the vessel's
    edges, and nothing in the flat background or outside the field."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    inside = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 30**2
    image = torch.zeros(1, 3, SIZE, SIZE)
    image[:, 0], image[:, 1], image[:, 2] = 0.8 * inside, 0.4 * inside, 0.2 * inside
    vessel = inside & (xx >= 30) & (xx < 34)
    image[:, :, vessel] *= 0.4
    sketch = extract_sketch(image, SketchConfig(fov_margin=0.05))[0]
    assert sketch[10:54, 30:34].all()  # the vessel, its whole length inside the eroded field (closing fills it)
    near = (xx >= 26) & (xx < 38) & (yy >= 4) & (yy < 60)
    assert not sketch[~near].any()  # flat background, the field's rim and outside it: nothing
    assert not sketch[:4].any() and not sketch[60:].any()


def test_sketch_pairs_use_only_the_train_split(phantom, tmp_path):
    import shutil

    data = tmp_path / "split"
    shutil.copytree(phantom, data)
    labels = (data / "labels.csv").read_text().splitlines()
    header, rows = labels[0], labels[1:]
    split_at = header.split(",").index("split")
    changed = [",".join(c if i != split_at else ("test" if k < 2 else c) for i, c in enumerate(r.split(",")))
               for k, r in enumerate(rows)]
    (data / "labels.csv").write_text("\n".join([header, *changed]) + "\n")
    images, sketches = load_sketch_pairs(data, 32)
    assert images.shape == (len(rows) - 2, 3, 32, 32) and sketches.shape == (len(rows) - 2, 1, 32, 32)
    assert set(sketches.unique().tolist()) <= {0.0, 1.0} and 0 <= images.min() and images.max() <= 1


def _overfit(losses, optimiser, steps: int) -> list[float]:
    history = []
    for _ in range(steps):
        loss = losses()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    return history


def test_sketch_gan_losses_fall_when_each_player_trains():
    """Each of Eq. 1's players lowers its own loss against a fixed opponent on a tiny set of drafts."""
    torch.manual_seed(0)
    model = SketchGAN(SketchGANConfig(res=16, latent=8, fmap_base=64, fmap_max=16))
    assert model.generator(torch.randn(2, 8)).shape == (2, 1, 16, 16)
    drafts = torch.zeros(4, 1, 16, 16)
    drafts[:, :, :, 7:9] = 1
    optim_d = torch.optim.Adam(model.discriminator.parameters(), lr=5e-3, betas=(0.0, 0.99))
    d = _overfit(lambda: model.discriminator_loss(drafts)["d"], optim_d, 20)
    assert d[-1] < d[0] - 0.2  # from 2 log 2 (chance) towards 0
    optim_g = torch.optim.Adam(model.generator.parameters(), lr=5e-3, betas=(0.0, 0.99))
    g = _overfit(lambda: model.generator_loss(drafts)["g"], optim_g, 20)
    assert g[-1] < 0.7 * g[0]
    first = model.sample([1, 2], size=32)
    assert first.shape == (2, 32, 32) and first.dtype == bool
    assert np.array_equal(first, model.sample([1, 2], size=32))  # seeded


def test_colour_renderer_l1_falls_on_a_tiny_overfit():
    torch.manual_seed(0)
    model = ColourRenderMapping(ColourRenderConfig(res=32, width=8, d_width=8))
    sketches = torch.zeros(2, 1, 32, 32)
    sketches[0, :, 8:24, 12:15] = 1
    sketches[1, :, 14:17, 4:28] = 1
    photos = torch.rand(2, 3, 32, 32) * 0.2 + 0.5 - sketches * 0.4  # dark vessels on an orange-ish field
    photos = photos * 2 - 1
    optim_g = torch.optim.Adam(model.generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optim_d = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    l1 = []
    for _ in range(25):
        d = model.discriminator_loss(photos, sketches)["d"]
        optim_d.zero_grad(set_to_none=True)
        d.backward()
        optim_d.step()
        g = model.generator_loss(photos, sketches)
        optim_g.zero_grad(set_to_none=True)
        g["g"].backward()
        optim_g.step()
        l1.append(float(g["l1"]))
    assert l1[-1] < 0.5 * l1[0]
    assert model.discriminator(torch.cat([photos, sketches], 1)).shape[1] == 1  # D_P sees the pair


@pytest.fixture(scope="module")
def skrgan_runs(tmp_path_factory):
    """Both stages trained for a few steps at 64 px on a phantom set, through the CLI."""
    from retina.cli import main
    from retina.phantom.dataset import write_phantom

    root = tmp_path_factory.mktemp("skrgan")
    data = root / "phantom"
    write_phantom(data, n=6, size=SIZE, grades=[0, 2, 4], seed=3)
    main(["layout", "train-sketch", "--data", str(data), "--out", str(root / "gs"), "--res", str(SIZE),
          "--kimg", "0.016", "--batch", "4", "--latent", "8", "--width", "4", "--channel-max", "16",
          "--device", "cpu", "--quiet"])
    main(["render", "train-sketch", "--data", str(data), "--out", str(root / "gp"), "--res", str(SIZE),
          "--kimg", "0.016", "--batch", "4", "--width", "4", "--d-width", "4", "--device", "cpu", "--quiet"])
    return root


def test_vessels_sketch_generates_end_to_end(skrgan_runs):
    from retina.cli import main

    root = skrgan_runs
    gs, checkpoint = load_sketch_generator(root / "gs")
    assert gs.config.res == SIZE and 0 < gs.config.train_fraction < 1
    assert checkpoint.state["step"] == 4 and checkpoint.config["training"]["stage"] == "sketch"
    out = root / "generated"
    main(["generate", "--vessels", "sketch", "--vessels-checkpoint", str(root / "gs"), "--renderer",
          str(root / "gp"), "--n", "3", "--out", str(out), "--device", "cpu"])
    generated = CanonicalDataset(out)
    assert len(generated) == 3 and generated.channels == ("vessels",)
    assert all(sample.grade is None for sample in generated.samples)  # SkrGAN is unconditional
    image = generated.load_image(generated.names[0])
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    # The vessel label is the sketch G_S drew for that sample's seed.
    seed = int(generated.samples[0].extra["seed"])
    assert np.array_equal(generated.load_masks(generated.names[0], ["vessels"])[0], gs.sample([seed], SIZE)[0])
    again = root / "generated_again"
    main(["generate", "--vessels", "sketch", "--vessels-checkpoint", str(root / "gs"), "--renderer",
          str(root / "gp"), "--n", "3", "--out", str(again), "--device", "cpu"])
    assert np.array_equal(CanonicalDataset(again).load_image(generated.names[2]), generated.load_image(
        generated.names[2]))
    # `retina layout sample --vessels sketch` draws the same G_S into a layout's vessel channel.
    main(["layout", "sample", "--n", "2", "--res", str(SIZE), "--vessels", "sketch", "--vessels-checkpoint",
          str(root / "gs"), "--out", str(root / "layouts"), "--device", "cpu"])
    assert CanonicalDataset(root / "layouts").load_masks("layout_000000", ["vessels"]).any()


def test_vessels_sketch_refuses_mismatched_models(skrgan_runs, capsys):
    from retina.cli import main

    root = skrgan_runs
    cases = [
        (["--renderer", str(root / "gp")], "--vessels sketch"),  # colour renderer without the sketch generator
        (["--vessels", "sketch", "--vessels-checkpoint", str(root / "gs")], "render train-sketch"),
        (["--vessels", "sketch", "--renderer", str(root / "gp")], "--vessels-checkpoint"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["generate", "--n", "1", "--res", str(SIZE), "--out", str(root / "bad"), "--device", "cpu", *extra])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
        assert not (root / "bad").exists()
    with pytest.raises(RetinaError, match="sketch-render/skrgan-unet"):
        from retina.render.skrgan import load_colour_renderer

        load_colour_renderer(root / "gs")
    with pytest.raises(RetinaError, match="a sketch/skrgan-sketch-pggan"):
        from retina.layout.aae import load_aae

        load_aae(root / "gs", "sketch")  # the AAE loader refuses G_S (and G_S's loader refuses the AAE)


def test_generate_vessels_aae_redraws_the_vessel_tree(phantom, tmp_path):
    """`retina generate --vessels aae` (the same Pipeline option): each layout's vessels are the AAE's tree for
    that sample's seed, inside the field of view, and the provenance names the AAE checkpoint."""
    from retina.cli import main
    from retina.layout.aae import load_aae

    main(["layout", "train-aae", "--data", str(phantom), "--res", "16", "--kimg", "0.016", "--batch", "8",
          "--latent", "8", "--width", "8", "--out", str(tmp_path / "aae"), "--quiet", "--device", "cpu"])
    out = tmp_path / "generated"
    main(["generate", "--n", "2", "--res", "32", "--vessels", "aae", "--vessels-checkpoint", str(tmp_path / "aae"),
          "--raw", "--out", str(out), "--device", "cpu"])
    generated = CanonicalDataset(out)
    aae, checkpoint = load_aae(tmp_path / "aae", "aae")
    for sample in generated.samples:
        vessels, fov = generated.load_masks(sample.name, ["vessels", "fov"])
        tree = aae.sample([int(sample.extra["seed"])], size=32)[0]
        assert np.array_equal(vessels, tree & fov)
    layout = json.loads((out / "retina.json").read_text())["provenance"]["layout"]
    assert layout["vessels"] == "aae" and layout["vessels_checkpoint_hash"] == checkpoint.short_hash
