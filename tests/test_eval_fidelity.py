"""Fidelity metrics on cases with known answers, the weights registry, and `retina eval fidelity` / `retina weights`."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from retina.common.errors import RetinaError
from retina.eval import weights as registry
from retina.eval.features import CustomExtractor, EffNetLite0, extract_features
from retina.eval.frechet import frechet_distance, kernel_distance, metric_name
from retina.eval.msssim import ms_ssim, msssim_diversity
from retina.eval.swd import sliced_wasserstein_distance


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from retina.phantom.dataset import write_phantom

    root = tmp_path_factory.mktemp("phantoms")
    real = write_phantom(root / "real", n=6, size=32, grades=[0, 4], seed=0)
    fake = write_phantom(root / "fake", n=6, size=32, grades=[0, 4], seed=1)
    return real, fake


def tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2))


# -- distances with known answers ------------------------------------------------------------------------------------
def test_frechet_identical_is_zero_and_mean_shift_gives_squared_norm():
    features = np.random.default_rng(0).normal(size=(40, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shifts = [0.25, 0.5, 1.0]
    distances = [frechet_distance(features, features + s) for s in shifts]
    # Same covariance, means apart by s in each of 16 dimensions: FD = 16 s^2 exactly.
    assert distances == pytest.approx([16 * s**2 for s in shifts], rel=1e-4)
    assert distances == sorted(distances)
    # Fewer images than dimensions: the exact low-rank route agrees with clean-fid's sqrtm on the full matrices.
    from cleanfid.fid import frechet_distance as cleanfid_frechet

    small_a, small_b = features[:10, :] @ np.ones((16, 2)).repeat(12, 1), features[10:22] @ np.ones((16, 24)) * 0.5
    small_a, small_b = small_a + np.random.default_rng(2).normal(size=small_a.shape), small_b + 1.0
    reference = cleanfid_frechet(small_a.mean(0), np.cov(small_a, rowvar=False), small_b.mean(0),
                                 np.cov(small_b, rowvar=False))
    assert frechet_distance(small_a, small_b) == pytest.approx(reference, rel=1e-3)
    assert frechet_distance(small_a, small_a) == pytest.approx(0.0, abs=1e-6)


def test_kid_grows_with_shift():
    features = np.random.default_rng(1).normal(size=(30, 8))
    # clean-fid's estimator: a set against itself reads O(1/m) below 0 (-0.48 here), a small shift near 0.
    values = [kernel_distance(features, features + s, num_subsets=10) for s in (0.0, 0.3, 0.6, 1.2)]
    assert values[0] < 0 and values == sorted(values) and values[-1] > 10 * abs(values[0])
    assert kernel_distance(features, features + 0.3, seed=3) == kernel_distance(features, features + 0.3, seed=3)


def test_distance_names_never_confusable_with_inception():
    assert metric_name("fd", "Inception") == "FID" and metric_name("kd", "Inception") == "KID"
    assert metric_name("fd", "EffNetLite0") == "FD-EffNetLite0" and metric_name("kd", "EffNetLite0") == "KD-EffNetLite0"
    with pytest.raises(RetinaError, match="same D"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 5)))


def test_swd_monotone_with_noise():
    import scipy.ndimage

    noise = np.random.default_rng(0).random((6, 3, 32, 32))
    images = torch.from_numpy(scipy.ndimage.gaussian_filter(noise, (0, 0, 1.5, 1.5))).float()  # some structure
    same = sliced_wasserstein_distance(images, images.clone())
    assert set(same) == {"SWD-32px", "SWD-16px", "SWD"}
    noisy = [sliced_wasserstein_distance(images, images + s * torch.randn_like(images))["SWD"]
             for s in (0.02, 0.05, 0.2)]
    assert same["SWD"] < noisy[0] < noisy[1] < noisy[2]
    with pytest.raises(RetinaError, match="at least 16"):
        sliced_wasserstein_distance(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))


def test_msssim_identical_pairs_are_one_and_diversity_in_range():
    images = torch.rand(4, 3, 32, 32)
    assert torch.allclose(ms_ssim(images, images), torch.ones(4))
    noisy = ms_ssim(images, (images + 0.2 * torch.randn_like(images)).clamp(0, 1))
    assert (noisy < 0.99).all()
    assert msssim_diversity(images.repeat(1, 1, 1, 1)[[0, 0, 0]], pairs=8) == pytest.approx(1.0)
    assert 0 < msssim_diversity(images, pairs=8) < 0.5  # independent noise images are almost unrelated


def test_lpips_random_backbone_is_labelled_as_not_real():
    from retina.eval.lpips_diversity import lpips_diversity

    name, value = lpips_diversity(torch.rand(3, 3, 32, 32) * 2 - 1, pairs=4, random_backbone=True)
    assert name == "LPIPS-random-backbone (not a real LPIPS)" and value > 0


# -- feature extractors ----------------------------------------------------------------------------------------------
def test_cleanfid_custom_extractor_path(tmp_path):
    files = []
    rng = np.random.default_rng(0)
    for i in range(4):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(files[-1])
    extractor = CustomExtractor(tiny_net(), name="TinyConv-random", input_size=32)
    seen = []
    features = extract_features(files, extractor, "cpu", batch_size=2, on_batch=seen.append)
    assert features.shape == (4, 32) and seen == [2, 2]
    assert np.array_equal(features, extract_features(files, extractor, "cpu", batch_size=4))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert metric_name("fd", extractor.name) == "FD-TinyConv-random"


def test_effnet_lite0_loads_offline_and_gives_1280_features():
    extractor = EffNetLite0().eval()
    with torch.no_grad():
        images = torch.rand(2, 3, 64, 64) * 255
        features = extractor(images)
        assert features.shape == (2, 1280) and torch.isfinite(features).all()
        assert torch.equal(features, extractor(images))
    assert extractor.name == "EffNetLite0"


def test_evaluate_fidelity_per_grade_names_the_custom_extractor(phantoms):
    from retina.eval.fidelity import FidelityOptions, evaluate_fidelity

    real, fake = phantoms
    options = FidelityOptions(metrics=("fd-effnet", "kd-effnet", "swd"), per_grade=True, res=32, device="cpu",
                              extractors={"effnet": CustomExtractor(tiny_net(), "TinyConv-random", 32)},
                              progress=False)
    report = evaluate_fidelity(real, fake, options)
    assert report["extractors"] == {"effnet": "TinyConv-random"}
    assert set(report["metrics"]) == {"all", "grade 0", "grade 4"}
    assert {"FD-TinyConv-random", "KD-TinyConv-random", "SWD"} <= set(report["metrics"]["all"])
    assert report["grade_mean"]["SWD"] == pytest.approx(
        (report["metrics"]["grade 0"]["SWD"] + report["metrics"]["grade 4"]["SWD"]) / 2)
    same = evaluate_fidelity(real, real, dataclasses.replace(options, per_grade=False))
    assert same["metrics"]["all"]["FD-TinyConv-random"] == pytest.approx(0.0, abs=1e-6)
    # Independent draws per set: a set against itself reads the sampling noise, below the other phantom seed's.
    assert 0 < same["metrics"]["all"]["SWD"] < report["metrics"]["all"]["SWD"]


# -- weights registry ------------------------------------------------------------------------------------------------
@pytest.fixture
def isolated_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RETINA_WEIGHTS_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(registry, "_verified", {})
    return tmp_path


def _register(monkeypatch, name: str, payload: bytes, url: str, sha: str | None = None, size: int | None = None):
    entry = registry.WeightFile(name, f"{name}.bin", url, sha or hashlib.sha256(payload).hexdigest(), size, "tests")
    monkeypatch.setitem(registry.REGISTRY, name, entry)
    return entry


def test_missing_weights_error_names_url_and_dirs(isolated_weights):
    with pytest.raises(RetinaError) as error:
        registry.find_weights("inception-fid", isolated_weights / "cli")
    message = str(error.value)
    assert "\n" not in message
    url = registry.REGISTRY["inception-fid"].url
    assert url.startswith("https://") and url.endswith("/inception-2015-12-05.pt") and url in message
    for folder in ("cli", "env", "torch/hub/checkpoints"):
        assert str(isolated_weights / folder) in message
    assert "retina weights fetch inception-fid" in message


def test_wrong_sha_or_size_is_refused_and_good_file_found(isolated_weights, monkeypatch):
    payload = b"weights" * 100
    entry = _register(monkeypatch, "toy", payload, "file:///nowhere", size=len(payload))
    folder = isolated_weights / "env"
    folder.mkdir()
    (folder / entry.filename).write_bytes(payload[:-1] + b"X")
    with pytest.raises(RetinaError, match="sha256"):
        registry.find_weights("toy")
    (folder / entry.filename).write_bytes(payload[:-1])
    with pytest.raises(RetinaError, match="bytes, expected"):
        registry.find_weights("toy")
    (folder / entry.filename).write_bytes(payload)
    assert registry.find_weights("toy") == folder / entry.filename


def test_fetch_via_file_url_writes_atomically_and_verifies(isolated_weights, monkeypatch):
    payload = b"\x00pretend weights\xff" * 50
    source = isolated_weights / "source.bin"
    source.write_bytes(payload)
    _register(monkeypatch, "toy", payload, source.as_uri())
    dest = isolated_weights / "dest"
    path = registry.fetch_weights("toy", dest)
    assert path.read_bytes() == payload and sorted(p.name for p in dest.iterdir()) == ["toy.bin"]
    _register(monkeypatch, "bad", payload, source.as_uri(), sha="0" * 64)
    with pytest.raises(RetinaError, match="sha256"):
        registry.fetch_weights("bad", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["toy.bin"]  # nothing half-written or unverified left


def test_load_torchvision_weights_is_weights_only(isolated_weights, monkeypatch):
    folder = isolated_weights / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    state = {"layer.weight": torch.arange(6.0).reshape(2, 3)}
    torch.save(state, folder / "toy.bin")  # stands in for a user-supplied torchvision .pth
    _register(monkeypatch, "toy", (folder / "toy.bin").read_bytes(), "file:///nowhere")
    loaded = registry.load_torchvision_weights("toy")
    assert torch.equal(loaded["layer.weight"], state["layer.weight"])


class _StandInInception(torch.nn.Module):
    """The interface of clean-fid's TorchScript Inception (a `layers` module giving 2048 values per image)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(3, 2048, 1))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def test_fid_path_loads_the_verified_torchscript_file_without_download(phantoms, isolated_weights, monkeypatch):
    from retina.eval.fidelity import FidelityOptions, evaluate_fidelity

    folder = isolated_weights / "weights"
    folder.mkdir()
    path = folder / "inception-2015-12-05.pt"
    torch.jit.script(_StandInInception()).save(str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = dataclasses.replace(registry.REGISTRY["inception-fid"], sha256=digest, size=path.stat().st_size)
    monkeypatch.setitem(registry.REGISTRY, "inception-fid", entry)
    real, fake = phantoms
    options = FidelityOptions(metrics=("fid", "kid"), res=32, device="cpu", weights_dir=folder, progress=False)
    report = evaluate_fidelity(real, fake, options)
    assert report["extractors"] == {"inception": "Inception"} and set(report["metrics"]["all"]) == {"FID", "KID"}
    assert report["metrics"]["all"]["FID"] > 0 and report["weights"]["inception-fid"]["path"] == str(path)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, other content: refused
    monkeypatch.setattr(registry, "_verified", {})
    with pytest.raises(RetinaError, match="sha256"):
        evaluate_fidelity(real, fake, options)


# -- CLI -------------------------------------------------------------------------------------------------------------
def test_cli_fidelity_writes_json(phantoms, tmp_path, capsys):
    from retina.cli import main

    real, fake = phantoms
    out = tmp_path / "fidelity.json"
    main(["eval", "fidelity", "--real", str(real), "--fake", str(fake), "--metrics", "swd,msssim", "--res", "32",
          "--per-grade", "--pairs", "8", "--device", "cpu", "--out", str(out)])  # returns on success
    report = json.loads(out.read_text())
    assert {"all", "grade 0", "grade 4"} == set(report["metrics"])
    # 32 px fits two scales of the 11-px window: the variant is named in the keys, the JSON and the table.
    assert 0 < report["metrics"]["all"]["MS-SSIM-2scale-fake"] <= 1 and report["metrics"]["all"]["SWD"] > 0
    assert "MS-SSIM-fake" not in report["metrics"]["all"]
    assert "not comparable with a 5-scale MS-SSIM" in report["variants"]["MS-SSIM-2scale"]
    printed = capsys.readouterr().out
    assert "fidelity of 6 generated vs 6 real" in printed and "MS-SSIM-2scale: 2 scales" in printed


def test_cli_fid_without_inception_is_one_line_error(phantoms, isolated_weights, capsys):
    from retina.cli import main

    real, fake = phantoms
    with pytest.raises(SystemExit) as done:
        main(["eval", "fidelity", "--real", str(real), "--fake", str(fake), "--metrics", "fid", "--device", "cpu"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "inception-2015-12-05.pt" in err


def test_cli_weights_list_and_unknown_fetch(isolated_weights, capsys):
    from retina.cli import main

    main(["weights", "list"])
    listing = capsys.readouterr().out
    assert "inception-2015-12-05.pt" in listing and "missing" in listing
    with pytest.raises(SystemExit) as done:
        main(["weights", "fetch", "nonsense"])
    assert done.value.code == 2 and "unknown weights 'nonsense'" in capsys.readouterr().err


def test_cli_fidelity_against_one_split_of_the_real_set(phantoms, tmp_path, capsys):
    from retina.cli import main

    real, fake = phantoms  # the 6 real phantoms' splits: train, train, val, train, train, val
    out = tmp_path / "val-only.json"
    main(["eval", "fidelity", "--real", str(real), "--fake", str(fake), "--metrics", "swd", "--res", "32",
          "--real-split", "val", "--device", "cpu", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["real_split"] == "val" and report["n_real"] == 2 and report["n_fake"] == 6
    assert "fidelity of 6 generated vs 2 real" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["eval", "fidelity", "--real", str(real), "--fake", str(fake), "--real-split", "test"])
    assert done.value.code == 2 and "no rows with split=test" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["eval", "fidelity", "--real", str(real), "--fake", str(fake), "--real-split", "holdout"])
    assert done.value.code == 2 and "--real-split holdout" in capsys.readouterr().err
