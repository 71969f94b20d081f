"""Layout metrics, the single-optic-disc post-process, SkrGAN sketches, the vessel AAE and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.schema import CHANNEL_NAMES
from retina.layout.aae import AAEConfig, VesselAAE, load_aae
from retina.layout.metrics import layout_report, layout_score, skeleton_connectivity
from retina.layout.optic_disc import enforce_single_optic_disc, optic_disc_violations
from retina.layout.sketch import extract_sketch
from retina.layout.vessels import load_vessel_source
from retina.phantom.dataset import write_phantom

VESSELS, OD, MA = (CHANNEL_NAMES.index(c) for c in ("vessels", "od", "ma"))


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions run several times faster on one thread than on two busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(tmp_path_factory.mktemp("ph") / "ph", n=10, size=32, grades=[0, 1, 2, 3, 4], seed=0)


def _layout(grade: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """A layout with one disc on the left at mid height, one connected vessel tree and 2 * grade microaneurysms."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((len(CHANNEL_NAMES), size, size), dtype=bool)
    ys, xs = np.ogrid[:size, :size]
    masks[OD] = (ys - size / 2) ** 2 + (xs - size * 0.25) ** 2 <= (size / 13) ** 2
    masks[VESSELS, size // 2, size // 4:] = True
    masks[VESSELS, size // 4: 3 * size // 4, size // 2] = True
    for _ in range(2 * grade):
        y, x = rng.integers(2, size - 2, 2)
        masks[MA, y, x] = True
    return masks


def _set(n: int = 20) -> tuple[np.ndarray, list[int]]:
    grades = [i % 5 for i in range(n)]
    return np.stack([_layout(g, seed=i) for i, g in enumerate(grades)]), grades


# -- metrics --------------------------------------------------------------------------------------
def test_identical_sets_have_zero_distance_and_connected_trees():
    masks, grades = _set()
    report = layout_report(masks, grades, masks, grades, CHANNEL_NAMES, classifier=False)
    for group in report["grades"].values():
        for stats in group["channels"].values():
            assert stats["count"]["distance"] == 0 and stats["area"]["distance"] == 0
    assert report["vessel_connectivity"] == {"real": 1.0, "fake": 1.0}
    assert report["optic_disc"]["fake"]["any_rate"] == 0
    assert layout_score(report) == 0.0
    noise = np.random.default_rng(0).random(masks.shape) < 0.05
    assert layout_report(masks, grades, noise, grades, CHANNEL_NAMES, classifier=False)["score"] > 1.0


def test_connectivity_of_a_broken_tree_and_grade_classifier():
    tree = _layout(0)[VESSELS]
    broken = tree.copy()
    broken[:, 30:] = False
    broken[5, 40:47] = True  # a separate fragment
    assert skeleton_connectivity(tree) == 1.0
    assert 0 < skeleton_connectivity(broken) < 1
    masks, grades = _set(30)
    control = layout_report(masks, grades, masks, grades, CHANNEL_NAMES)["grade_control"]
    assert control["grade_accuracy_real_train"] > 0.8  # counts of microaneurysms give the grade away
    assert control["grade_agreement_fake"] > 0.8
    wrong = [(g + 2) % 5 for g in grades]
    assert layout_report(masks, grades, masks, wrong, CHANNEL_NAMES)["grade_control"]["grade_agreement_fake"] < 0.3


def test_report_refuses_mismatched_shapes():
    masks, grades = _set(4)
    with pytest.raises(RetinaError, match="resample"):
        layout_report(masks, grades, masks[..., :32, :32], grades, CHANNEL_NAMES)


# -- optic disc -----------------------------------------------------------------------------------
def test_two_optic_discs_are_a_violation_and_get_fixed():
    good = _layout(2)
    fixed, changed = enforce_single_optic_disc(good, CHANNEL_NAMES)
    assert not changed and fixed is good
    two = good.copy()
    two[OD, 4:8, 40:44] = True  # a second, smaller disc in a corner
    assert optic_disc_violations(two, CHANNEL_NAMES)["count_violations"] == 1
    fixed, changed = enforce_single_optic_disc(two, CHANNEL_NAMES)
    assert changed
    assert optic_disc_violations(fixed, CHANNEL_NAMES)["any_violations"] == 0
    assert np.array_equal(fixed[OD], good[OD])  # the large disc on the vessel root was kept
    assert np.array_equal(fixed[MA], two[MA])  # other channels untouched


def test_post_process_keeps_one_disc_and_fills_the_field_of_view():
    from retina.layout.post_process import clean_layout, clip_to_field_of_view, fill_field_of_view

    fov = CHANNEL_NAMES.index("fov")
    good = _layout(2)
    good[fov, 1:] = True  # everything but the top row is inside the field
    cleaned, changed = clean_layout(good, CHANNEL_NAMES)
    assert not changed and np.array_equal(cleaned, good)
    bad = good.copy()
    bad[OD, 4:8, 40:44] = True  # a second disc
    bad[fov, 20:26, 30:36] = False  # and a hole in the field where a removed disc was
    bad[MA, 0, 0] = True  # and a lesion in a black corner, outside the field
    cleaned, changed = clean_layout(bad, CHANNEL_NAMES)
    assert changed and np.array_equal(cleaned[fov], good[fov]) and np.array_equal(cleaned[OD], good[OD])
    assert not cleaned[MA, 0, 0] and np.array_equal(cleaned[MA], good[MA])
    # a model that draws no disc: its empty disc channel is left empty and the layout counts as unchanged
    no_disc = good.copy()
    no_disc[OD] = False
    drawn = [c for c in CHANNEL_NAMES if c != "od"]
    cleaned, changed = clean_layout(no_disc, CHANNEL_NAMES, drawn)
    assert not changed and not cleaned[OD].any()
    assert clean_layout(no_disc, CHANNEL_NAMES)[1]  # drawing discs and missing one: one is placed
    without_fov = [c for c in CHANNEL_NAMES if c != "fov"]
    assert fill_field_of_view(bad[[CHANNEL_NAMES.index(c) for c in without_fov]], without_fov)[1] is False
    assert clip_to_field_of_view(bad[[CHANNEL_NAMES.index(c) for c in without_fov]], without_fov)[1] is False


def test_missing_or_misplaced_disc_is_placed_at_the_vessel_root():
    none = _layout(1)
    none[OD] = False
    assert optic_disc_violations(none, CHANNEL_NAMES)["count_violations"] == 1
    fixed, changed = enforce_single_optic_disc(none, CHANNEL_NAMES)
    assert changed and optic_disc_violations(fixed, CHANNEL_NAMES)["any_violations"] == 0
    top = _layout(1)
    top[OD] = False
    top[OD, 0:5, 20:26] = True  # at the top edge: implausible
    assert optic_disc_violations(top, CHANNEL_NAMES)["place_violations"] == 1
    fixed, _ = enforce_single_optic_disc(top, CHANNEL_NAMES)
    assert optic_disc_violations(fixed, CHANNEL_NAMES)["any_violations"] == 0


def test_procedural_prior_has_no_optic_disc_violations():
    from retina.phantom.layout import sample_layout

    masks = np.stack([sample_layout(i % 5, 48, seed=i).masks for i in range(20)])
    assert optic_disc_violations(masks, CHANNEL_NAMES)["any_violations"] == 0


# -- sketch ---------------------------------------------------------------------------------------
def test_sketch_extraction_shape_range_and_field_of_view(phantom):
    dataset = CanonicalDataset(phantom)
    images = torch.stack([torch.from_numpy(dataset.load_image(n)).permute(2, 0, 1) for n in dataset.names[:3]])
    sketch = extract_sketch(images.float() / 255)
    assert sketch.shape == (3, 32, 32) and sketch.dtype == torch.bool
    assert 0.01 < sketch.float().mean() < 0.5
    assert not sketch[:, 0, :].any() and not sketch[:, :, 0].any()  # outside the field of view
    assert torch.equal(sketch, extract_sketch(images.float() / 255))
    with pytest.raises(ValueError):
        extract_sketch(images[:, :1].float())


# -- AAE ------------------------------------------------------------------------------------------
def test_aae_tiny_overfit_reconstruction_drops():
    torch.manual_seed(0)
    model = VesselAAE(AAEConfig(res=16, latent=8, width=8, max_width=16))
    maps = torch.from_numpy(np.stack([_layout(0, size=16)[VESSELS], _layout(0, size=16)[VESSELS].T]))[:, None]
    maps = maps.float()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        losses = model.losses(maps)
        optimiser.zero_grad()
        (losses["autoencoder"] + losses["discriminator"]).backward()
        optimiser.step()
        history.append(float(losses["reconstruction"]))
    assert history[-1] < 0.5 * history[0]
    assert model.sample([1, 2], size=32).shape == (2, 32, 32)


def test_aae_stochastic_encoder_shapes_and_sampling_variance_at_256px():
    torch.manual_seed(0)
    model = VesselAAE(AAEConfig(res=256, latent=8, width=2, max_width=16))  # Mahajan et al.'s resolution
    x = (torch.rand(2, 1, 256, 256) > 0.9).float()
    model.eval()  # BatchNorm on running statistics: the draws below differ by eps alone
    z, mu, log_var = model.encoder(x)
    assert z.shape == mu.shape == log_var.shape == (2, 8)
    with torch.no_grad():
        draws = torch.stack([model.encoder(x)[0] for _ in range(400)])
    assert not torch.equal(draws[0], draws[1])  # a new eps per call: z is a draw, not f(x)
    sigma = torch.exp(0.5 * log_var).detach()
    torch.testing.assert_close(draws.mean(0), mu.detach(), atol=float(4 * sigma.max() / 20), rtol=0)
    ratio = draws.var(0) / sigma.square()
    assert 0.75 < float(ratio.min()) and float(ratio.max()) < 1.3  # the variance the sigma head states
    code, logits = model(x)
    assert code.shape == (2, 8) and logits.shape == (2, 1, 256, 256)
    deterministic = VesselAAE(AAEConfig(res=256, latent=8, width=2, max_width=16, encoder="deterministic")).eval()
    first, mean, none = deterministic.encoder(x)
    assert none is None and torch.equal(first, mean) and torch.equal(first, deterministic.encoder(x)[0])
    with pytest.raises(RetinaError, match="--encoder"):
        AAEConfig(encoder="vae")


def test_aae_prior_matching_trains_through_the_reparameterised_codes():
    """Codes that start off the prior: the code discriminator learns to tell them from N(0, I) (its loss falls),
    then the stochastic encoder learns to fool it, through z = mu + sigma * eps (its loss falls, its codes move
    towards the prior's mean)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = VesselAAE(AAEConfig(res=16, latent=8, width=8, max_width=16))
    maps = torch.from_numpy(np.stack([_layout(g % 5, size=16, seed=g)[VESSELS] for g in range(8)]))[:, None].float()
    with torch.no_grad():
        model.encoder.mu.bias += 3.0
    optimiser_d = torch.optim.Adam(model.code_discriminator.parameters(), lr=1e-3)
    d_losses = []
    for _ in range(30):
        loss = model.losses(maps)["discriminator"]
        optimiser_d.zero_grad()
        loss.backward()
        optimiser_d.step()
        d_losses.append(float(loss.detach()))
    assert d_losses[-1] < 0.2 * d_losses[0]
    optimiser_e = torch.optim.Adam(model.encoder.parameters(), lr=1e-2)
    fooling, means, sigma_grads = [], [], []
    for _ in range(10):
        z, _, _ = model.encoder(maps)
        loss = F.binary_cross_entropy_with_logits(model.code_discriminator(z), torch.ones(len(z), 1))
        optimiser_e.zero_grad()
        loss.backward()
        sigma_grads.append(float(model.encoder.log_var.weight.grad.abs().sum()))
        optimiser_e.step()
        fooling.append(float(loss.detach()))
        means.append(float(z.detach().mean()))
    assert fooling[-1] < 0.5 * fooling[0] and means[-1] < means[0]
    assert sigma_grads[0] > 0  # sigma learns too


def test_aae_checkpoints_before_the_encoder_option_load_deterministic():
    saved = {k: v for k, v in AAEConfig(res=16, latent=8).__dict__.items() if k != "encoder"}
    assert AAEConfig.from_saved(saved).encoder == "deterministic"
    assert AAEConfig.from_saved({**saved, "encoder": "stochastic"}).encoder == "stochastic"


def _cli_app() -> typer.Typer:
    from retina.cli import app

    return app


def test_train_aae_cli_round_trip_resume_and_vessel_replacement(phantom, tmp_path):
    run = tmp_path / "aae"
    runner = CliRunner()
    args = ["layout", "train-aae", "--data", str(phantom), "--res", "16", "--kimg", "0.032", "--batch", "8",
            "--latent", "8", "--width", "8", "--lr", "0.0005", "--out", str(run), "--quiet", "--device", "cpu"]
    result = runner.invoke(_cli_app(), args)
    assert result.exit_code == 0, result.output
    model, checkpoint = load_aae(run, "aae")
    assert checkpoint.config["kind"] == "aae" and checkpoint.state["step"] == 4
    training = checkpoint.config["training"]  # every option reaches the run's config
    assert (training["lr"], training["batch"], training["model"]["width"], training["model"]["latent"]) == (
        0.0005, 8, 8, 8)
    first = model.sample([5, 6], size=32)
    again, _ = load_aae(run / "last.safetensors", "aae")
    assert np.array_equal(first, again.sample([5, 6], size=32))  # checkpoint round trip, seeded sampling

    result = runner.invoke(_cli_app(), ["layout", "train-aae", "--resume", str(run), "--kimg", "0.064", "--quiet",
                                        "--device", "cpu"])
    assert result.exit_code == 0, result.output
    _, resumed = load_aae(run, "aae")
    assert resumed.state["step"] == 8 and resumed.state["images_seen"] == 64
    # a total already reached is refused in one line, not silently trained past or ignored
    from retina.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["layout", "train-aae", "--resume", str(run), "--kimg", "0.064", "--quiet", "--device", "cpu"])
    assert exit_info.value.code == 2
    assert load_aae(run, "aae")[1].state["images_seen"] == 64

    with pytest.raises(RetinaError, match="sketch"):
        load_aae(run, "sketch")  # an aae checkpoint is not a sketch generator
    source = load_vessel_source("aae", run, "cpu")
    dataset = CanonicalDataset(phantom)
    masks = np.stack([dataset.load_masks(n, CHANNEL_NAMES) for n in dataset.names])
    replaced = source.replace(masks, list(range(len(masks))))
    assert replaced.shape == masks.shape and replaced.dtype == bool
    assert np.array_equal(replaced[:, MA], masks[:, MA])
    assert np.array_equal(replaced, source.replace(masks, list(range(len(masks)))))
    repaired = np.stack([enforce_single_optic_disc(m, CHANNEL_NAMES)[0] for m in replaced])
    assert optic_disc_violations(repaired, CHANNEL_NAMES)["count_violations"] == 0


def test_vessel_source_errors():
    assert load_vessel_source("gan", None) is None
    with pytest.raises(RetinaError, match="retina layout train-aae"):
        load_vessel_source("aae", None)
    with pytest.raises(RetinaError, match="train-sketch"):
        load_vessel_source("sketch", None)
    with pytest.raises(RetinaError, match="unknown"):
        load_vessel_source("vae", None)


def test_train_sketch_cli_rejects_a_masks_only_set(tmp_path, phantom, capsys):
    import shutil

    from retina.cli import main

    masks_only = tmp_path / "masks_only"
    shutil.copytree(phantom, masks_only)
    shutil.rmtree(masks_only / "images")
    with pytest.raises(SystemExit) as exit_info:
        main(["layout", "train-sketch", "--data", str(masks_only), "--res", "16", "--kimg", "0.008",
              "--out", str(tmp_path / "sk"), "--quiet"])
    assert exit_info.value.code == 2
    assert "images" in capsys.readouterr().err


# -- retina eval layout ---------------------------------------------------------------------------
def test_eval_layout_command_writes_json(phantom, tmp_path):
    from retina.eval.layout_cli import layout

    app = typer.Typer()
    app.command()(layout)
    other = write_phantom(tmp_path / "other", n=10, size=32, grades=[0, 1, 2, 3, 4], seed=1)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["--real", str(phantom), "--fake", str(other), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["resolution"] == 32 and report["optic_disc"]["fake"]["any_rate"] == 0
    assert 0 < report["score"] < 5
    assert "layout score" in result.output


def test_eval_layout_without_shared_channels_is_a_one_line_error(phantom, tmp_path, capsys):
    import shutil

    from retina.cli import main

    no_masks = tmp_path / "no_masks"
    shutil.copytree(phantom, no_masks)
    shutil.rmtree(no_masks / "masks")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "layout", "--real", str(phantom), "--fake", str(no_masks)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "share no mask channels" in err and len(err.splitlines()) == 1


def test_post_process_repairs_any_garbage_mask_stack():
    # Random noise, blobs, all-on/all-off planes and vessels only outside the plausible region (where the
    # vessel-density maximum touches no vessel: the case the disc move / vessel stub exists for).
    from scipy import ndimage

    rng = np.random.default_rng(0)
    stacks = []
    for size in (8, 16, 48):
        for trial in range(30):
            noise = rng.random((len(CHANNEL_NAMES), size, size))
            if trial % 5 == 0:
                stack = noise < rng.uniform(0.001, 0.6)
            elif trial % 5 == 1:
                stack = ndimage.gaussian_filter(noise, (0, 2, 2)) > rng.uniform(0.5, 0.56)
            elif trial % 5 == 2:
                stack = np.zeros_like(noise, dtype=bool)
                stack[VESSELS, :, :2] = noise[VESSELS, :, :2] < 0.5
                stack[OD] = noise[OD] < 0.01
            elif trial % 5 == 3:
                stack = np.full(noise.shape, bool(trial % 2))
            else:
                stack = noise < 0.05
                stack[VESSELS] = noise[VESSELS] < 0.002
            stacks.append(stack)
    edge_only = stacks[2 + 30 * 2]  # 48 px, vessels only in the two leftmost columns
    assert optic_disc_violations(edge_only, CHANNEL_NAMES)["any_violations"] == 1
    for stack in stacks:
        fixed, _ = enforce_single_optic_disc(stack, CHANNEL_NAMES)
        assert optic_disc_violations(fixed, CHANNEL_NAMES)["any_violations"] == 0
        others = [i for i in range(len(CHANNEL_NAMES)) if i not in (OD, VESSELS)]
        assert np.array_equal(fixed[others], stack[others])  # only the disc (and a vessel stub) may change
        assert (fixed[VESSELS] | ~stack[VESSELS]).all()  # vessels are only ever added
