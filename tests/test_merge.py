"""`retina data merge` and `retina data split`: joining shards, refusing parts that do not belong together,
and splitting a set into train and held-out parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.errors import RetinaError
from retina.data.merge import merge_datasets


def shard(out: Path, names: list[str], seeds: list[int] | None = None, size: int = 16,
          channels: tuple[str, ...] = ("ma", "fov")) -> Path:
    rng = np.random.default_rng(len(names) + size)
    extra = ("seed",) if seeds is not None else ()
    with CanonicalWriter(out, resolution=size, provenance={"shard": out.name}, extra_columns=extra) as writer:
        for i, name in enumerate(names):
            cells = {"seed": seeds[i]} if seeds is not None else {}
            writer.add(name, image=rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                       masks={c: rng.random((size, size)) > 0.7 for c in channels}, grade=i % 5,
                       split="train", source="test", **cells)
    return out


def test_merge_shards(tmp_path):
    a = shard(tmp_path / "s0", ["g_000", "g_002"], seeds=[0, 2])
    b = shard(tmp_path / "s1", ["g_001", "g_003", "g_005"], seeds=[1, 3, 5])
    report = merge_datasets([a, b], tmp_path / "all", show_progress=False)
    merged = CanonicalDataset(tmp_path / "all")
    assert len(merged) == report.count == 5
    assert merged.names == ["g_000", "g_002", "g_001", "g_003", "g_005"]
    assert merged.channels == ("ma", "fov") and merged.resolution == 16
    assert [s.extra["seed"] for s in merged.samples] == ["0", "2", "1", "3", "5"]
    assert (merged.mask_path("ma", "g_003").read_bytes() == CanonicalDataset(b).mask_path("ma", "g_003").read_bytes())
    np.testing.assert_array_equal(merged.load_image("g_000"), CanonicalDataset(a).load_image("g_000"))
    info = json.loads((tmp_path / "all" / "retina.json").read_text())
    assert [p["count"] for p in info["provenance"]["merged_from"]] == [2, 3]
    assert info["provenance"]["merged_from"][1]["provenance"] == {"shard": "s1"}
    assert "merged 2 sets, 5 samples" in report.summary_line()


@pytest.mark.parametrize("case, message", [
    ("name", "sample 'g_000' is also in"),
    ("seed", "seed 2 of 'g_009' was already used"),
    ("channels", "mask channels ma, he, fov differ"),
    ("resolution", "resolution 32 differs"),
    ("seedless", "no 'seed' column"),
])
def test_merge_refuses(tmp_path, case, message):
    a = shard(tmp_path / "s0", ["g_000", "g_002"], seeds=[0, 2])
    b = {
        "name": lambda: shard(tmp_path / "s1", ["g_000"], seeds=[7]),
        "seed": lambda: shard(tmp_path / "s1", ["g_009"], seeds=[2]),
        "channels": lambda: shard(tmp_path / "s1", ["g_001"], seeds=[1], channels=("ma", "he", "fov")),
        "resolution": lambda: shard(tmp_path / "s1", ["g_001"], seeds=[1], size=32),
        "seedless": lambda: shard(tmp_path / "s1", ["g_001"]),
    }[case]()
    with pytest.raises(RetinaError, match=message):
        merge_datasets([a, b], tmp_path / "all", show_progress=False)
    assert not (tmp_path / "all").exists() and not (tmp_path / "all.partial").exists()


def test_merge_cli(tmp_path, capsys):
    from retina.cli import main

    a = shard(tmp_path / "s0", ["x"])
    b = shard(tmp_path / "s1", ["y"])
    main(["data", "merge", str(a), str(b), "--out", str(tmp_path / "all")])
    assert "merged 2 sets, 2 samples" in capsys.readouterr().out
    for argv in ([str(a), "--out", str(tmp_path / "one")], [str(a), str(b), "--out", str(tmp_path / "all")],
                 [str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "x")]):
        with pytest.raises(SystemExit) as done:
            main(["data", "merge", *argv])
        err = capsys.readouterr().err
        assert done.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_split_is_deterministic_disjoint_and_complete(tmp_path):
    from retina.data.split import heldout_every, heldout_random, write_split

    names = [f"s_{i:03d}" for i in range(10)]
    data = CanonicalDataset(shard(tmp_path / "all", names, seeds=list(range(10))))
    held = heldout_random(data.names, 0.2, seed=3)
    assert held == heldout_random(reversed(data.names), 0.2, seed=3) and len(held) == 2
    assert heldout_every(data.names, 5) == {"s_000", "s_005"}
    assert write_split(data, held, tmp_path / "tr", tmp_path / "ho", "test rule") == (8, 2)
    train, heldout = CanonicalDataset(tmp_path / "tr"), CanonicalDataset(tmp_path / "ho")
    assert set(heldout.names) == held and set(train.names) | held == set(names)
    assert {s.split for s in heldout.samples} == {"test"} and {s.split for s in train.samples} == {"train"}
    assert json.loads((tmp_path / "ho" / "retina.json").read_text())["provenance"]["heldout_names"] == sorted(held)
    name = sorted(held)[0]
    assert (tmp_path / "ho" / "images" / f"{name}.png").read_bytes() == data.image_path(name).read_bytes()
    with pytest.raises(RetinaError, match="fraction"):
        heldout_random(data.names, 1.0, seed=0)
