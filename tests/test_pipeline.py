"""The Python API (`from retina import Pipeline`): in memory it gives what `retina generate` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retina.cli import main
from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.schema import CHANNEL_NAMES


@pytest.fixture(scope="module")
def pipe():
    from retina import Pipeline

    return Pipeline.load(device="cpu")


def test_generate_in_memory_equals_the_generate_command(pipe, tmp_path):
    batch = pipe.generate(grades=[4, 0, 2], seed=3, res=32)
    assert batch.images.shape == (3, 32, 32, 3) and batch.images.dtype == np.uint8
    assert batch.masks.shape == (3, len(CHANNEL_NAMES), 32, 32) and batch.masks.dtype == bool
    assert batch.grades == [4, 0, 2] and len(set(batch.seeds)) == 3
    assert batch.provenance["preview"] is True and batch.provenance["layout"]["name"] == "procedural"
    main(["generate", "--n", "3", "--grades", "4,0,2", "--seed", "3", "--res", "32", "--device", "cpu",
          "--out", str(tmp_path / "cli")])
    written = CanonicalDataset(tmp_path / "cli")
    for j, name in enumerate(written.names):
        assert np.array_equal(written.load_image(name), batch.images[j])
        assert np.array_equal(written.load_masks(name, CHANNEL_NAMES), batch.masks[j])
        assert int(written.sample(name).extra["seed"]) == batch.seeds[j]
    again = pipe.generate(grades=[4, 0, 2], seed=3, res=32)
    assert np.array_equal(again.images, batch.images)
    other = pipe.generate(grades=[4, 0, 2], seed=4, res=32)
    assert not np.array_equal(other.images, batch.images)


def test_render_and_save_round_trip(pipe, tmp_path):
    batch = pipe.generate(grades=[3, 3], seed=0, res=32)
    single = pipe.render(batch.masks[0], 3, seeds=[batch.seeds[0]])
    assert np.array_equal(single, batch.images[0])
    both = pipe.render(batch.masks.astype(np.float32), [3, 3], seeds=batch.seeds)
    assert np.array_equal(both, batch.images)
    out = pipe.save(batch, tmp_path / "saved")
    data = CanonicalDataset(out)
    assert data.names == ["gen_000000", "gen_000001"] and [s.grade for s in data.samples] == [3, 3]
    assert np.array_equal(data.load_image("gen_000001"), batch.images[1])
    with pytest.raises(RetinaError, match="already exists"):
        pipe.save(batch, out)


@pytest.mark.parametrize("call, message", [
    (lambda p: p.generate(grades=[7]), "outside 0-4"),
    (lambda p: p.generate(grades=[]), "at least one grade"),
    (lambda p: p.generate(grades=[1], seed=-1), "seed -1"),
    (lambda p: p.generate(grades=[1], res=8), "too small"),
    (lambda p: p.render(np.zeros((3, 32, 32), bool), 0), "masks must be"),
    (lambda p: p.render(np.zeros((2, len(CHANNEL_NAMES), 32, 32), bool), [0]), "2 mask stack"),
])
def test_clear_errors(pipe, call, message):
    with pytest.raises(RetinaError, match=message):
        call(pipe)


def test_readme_pipeline_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    example = next(block for block in blocks if "import Pipeline" in block)
    assert len(example.strip().splitlines()) <= 5
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(example.replace("256", "32"), "README.md", "exec"), scope)  # 32 px: the same code, faster
    assert len(scope["batch"]) == 8 and set(scope["batch"].grades) == {4}
    assert len(CanonicalDataset(tmp_path / "synthetic")) == 8
