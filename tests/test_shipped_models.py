"""The models packaged with retina (retina/models, MODEL_CARD.md): present, small, loadable, deterministic, and the
default of `retina render`, `retina generate` and `Pipeline.load()`. A package whose weights are missing or broken
fails here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retina.cli import main
from retina.common.canonical import CanonicalDataset
from retina.common.checkpoint import Checkpoint, file_sha256
from retina.common.schema import CHANNEL_NAMES
from retina.shipped import MODELS_DIR, shipped_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _shipped_default(monkeypatch):
    monkeypatch.setenv("RETINA_MODELS", "shipped")  # conftest makes the suite's default procedural


def test_both_models_ship_in_half_precision_within_64_mb():
    paths = [shipped_checkpoint("layout"), shipped_checkpoint("render")]
    assert all(p is not None and p.is_file() for p in paths), f"missing packaged models in {MODELS_DIR}"
    assert sum(p.stat().st_size for p in paths) <= 64 * 2**20
    for path in paths:
        loaded = Checkpoint(path)
        floats = [t for t in loaded.tensors.values() if t.is_floating_point()]
        assert floats and all(t.dtype == torch.float16 for t in floats)
        assert all(torch.isfinite(t.float()).all() for t in floats)
        assert loaded.config["exported_from"]["sha256"]
        assert (MODELS_DIR / path.name.replace(".safetensors", ".fingerprint.json")).is_file()
    assert (MODELS_DIR / "MODEL_CARD.md").is_file()


def test_shipped_renderer_draws_a_deterministic_batch():
    from retina.layout.model import load_layout_model
    from retina.render.model import load_renderer

    renderer = load_renderer(shipped_checkpoint("render"))
    res = renderer.res
    masks = load_layout_model(None).sample([2, 3], seeds=[0, 1], res=res)  # (B, NUM_CHANNELS, res, res)
    stack = torch.from_numpy(masks[:, [CHANNEL_NAMES.index(c) for c in renderer.channels]]).float()
    first = renderer.render(stack, torch.tensor([2, 3]), [5, 6])
    again = renderer.render(stack, torch.tensor([2, 3]), [5, 6])
    assert first.shape == (2, 3, res, res)
    assert torch.equal(first, again)
    assert first.min() >= -1 - 1e-4 and first.max() <= 1 + 1e-4 and first.std() > 0.05
    # a photograph, not a flat disc: the inside of the eye has structure
    assert (first[:, :, res // 4: 3 * res // 4, res // 4: 3 * res // 4].std(dim=(2, 3)) > 0.01).all()


def test_render_and_generate_use_the_shipped_models_by_default(tmp_path, capsys):
    main(["generate", "--n", "2", "--grades", "2,3", "--device", "cpu", "--out", str(tmp_path / "chain")])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "shipped layout model" in line and "shipped render model" in line
    info = json.loads((tmp_path / "chain" / "retina.json").read_text())
    generators = {g["role"]: g for g in info["provenance"]["generators"]}
    assert generators["renderer"]["checkpoint_sha256"] == file_sha256(shipped_checkpoint("render"))
    assert generators["layout"]["checkpoint_sha256"] == file_sha256(shipped_checkpoint("layout"))
    assert generators["renderer"]["training_set"]["count"] > 0  # benches can check the shipped model for leaks
    main(["render", "--masks", str(tmp_path / "chain"), "--device", "cpu", "--out", str(tmp_path / "again")])
    assert "shipped render model" in capsys.readouterr().out
    chain, again = CanonicalDataset(tmp_path / "chain"), CanonicalDataset(tmp_path / "again")
    assert np.array_equal(chain.load_image(chain.names[0]), again.load_image(again.names[0]))
    main(["render", "--masks", str(tmp_path / "chain"), "--renderer", "procedural", "--out", str(tmp_path / "p")])
    assert "procedural" in capsys.readouterr().out.strip().splitlines()[-1]


def test_pipeline_load_defaults_to_the_shipped_models():
    from retina import Pipeline

    pipe = Pipeline.load(device="cpu")
    assert not pipe.preview
    batch = pipe.generate(grades=[2], seed=0)
    assert batch.images.shape == (1, pipe.res, pipe.res, 3) and batch.images.dtype == np.uint8
    assert Pipeline.load("procedural", "procedural", device="cpu").preview


def test_grades_outside_the_training_data_are_named(tmp_path, capsys):
    from retina.render.model import load_renderer

    assert load_renderer(shipped_checkpoint("render")).seen_grades == (2, 3)  # IDRiD-seg, grade rule: 2 and 3
    main(["generate", "--n", "2", "--grades", "0,2", "--device", "cpu", "--out", str(tmp_path / "g")])
    err = " ".join(capsys.readouterr().err.split())
    assert "trained on grade(s) 2, 3 only; grade(s) 0 are outside its training data" in err
