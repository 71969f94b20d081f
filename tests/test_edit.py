"""Lesion manipulation (retina.edit, `retina layout edit`): edits do what they say, stay inside the field of view,
keep everything else, and a re-render with the same seed changes the photograph only around the edit."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from retina.cli import main
from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.grade_rule import grade_from_stack
from retina.common.schema import CHANNEL_NAMES, LESION_CHANNELS
from retina.edit import (
    Layout,
    add_lesions,
    grade_check,
    move,
    paint,
    remove_lesions,
    sample,
    scale_lesions,
)
from retina.phantom.render import render_fundus

SIZE = 96


@pytest.fixture(scope="module")
def severe() -> Layout:
    return sample(grade=3, size=SIZE, seed=0)


def others_unchanged(before: Layout, after: Layout, channel: str) -> bool:
    return all(np.array_equal(before.channel(c), after.channel(c)) for c in CHANNEL_NAMES if c != channel)


def components(plane: np.ndarray) -> int:
    return cv2.connectedComponents(plane.astype(np.uint8), connectivity=8)[0] - 1


def test_sample_is_the_procedural_prior(severe):
    assert severe.grade == 3 and severe.masks.shape == (len(CHANNEL_NAMES), SIZE, SIZE)
    assert grade_check(severe).consistent and grade_from_stack(severe.masks) == 3


@pytest.mark.parametrize("channel", LESION_CHANNELS)
def test_add_draws_lesions_inside_the_field_only_in_that_channel(severe, channel):
    added = add_lesions(severe, channel, 3, seed=1)
    new = added.channel(channel) & ~severe.channel(channel)
    assert new.any(), f"no {channel} drawn"
    assert not (added.channel(channel) & ~severe.channel("fov")).any()
    assert others_unchanged(severe, added, channel)
    assert severe.channel(channel).sum() <= added.channel(channel).sum()
    assert np.array_equal(add_lesions(severe, channel, 3, seed=1).masks, added.masks)  # same seed, same lesions


def test_add_counts_and_region(severe):
    empty = remove_lesions(severe, "ma")
    assert components(add_lesions(empty, "ma", 12, seed=2).channel("ma")) >= 9  # a few may touch or merge
    box = (10, 30, 40, 60)
    boxed = add_lesions(remove_lesions(severe, "he"), "he", 5, region=box, seed=3).channel("he")
    ys, xs = np.nonzero(boxed)
    assert boxed.any() and xs.min() >= 10 and xs.max() < 40 and ys.min() >= 30 and ys.max() < 60
    with pytest.raises(RetinaError, match="anatomy"):
        add_lesions(severe, "od", 1)
    with pytest.raises(RetinaError, match="no pixel"):
        add_lesions(severe, "he", 1, region=(0, 0, 2, 2))  # the corner is outside the field of view


def test_remove_all_or_where(severe):
    none = remove_lesions(severe, "he")
    assert not none.channel("he").any() and others_unchanged(severe, none, "he")
    plane = severe.channel("he")
    ys, xs = np.nonzero(plane)
    y, x = ys[0], xs[0]
    where = np.zeros_like(plane)
    where[y, x] = True
    partial = remove_lesions(severe, "he", where=where).channel("he")
    assert not partial[y, x] and components(partial) == components(plane) - 1  # exactly that one whole lesion


def test_scale_grows_and_shrinks_each_lesion_about_its_centre(severe):
    plane = severe.channel("ex")
    grown, shrunk = scale_lesions(severe, "ex", 2.0).channel("ex"), scale_lesions(severe, "ex", 0.5).channel("ex")
    assert grown.sum() > 2 * plane.sum() and shrunk.sum() < plane.sum()
    ys, xs = np.nonzero(plane)
    gy, gx = np.nonzero(grown)
    assert abs(gy.mean() - ys.mean()) < 3 and abs(gx.mean() - xs.mean()) < 3
    assert 0 < components(shrunk) <= components(plane)  # lesions shrink but never vanish
    with pytest.raises(RetinaError, match="positive"):
        scale_lesions(severe, "ex", 0)


def test_move_shifts_pixels_and_paint_erases(severe):
    moved = move(severe, "he", 3, -2).channel("he")
    plane = severe.channel("he")
    inner = plane[4:-4, 4:-4]
    assert np.array_equal(moved[2:-6, 7:-1], inner)  # (y - 2, x + 3)
    stroke = np.zeros_like(plane)
    stroke[:, : SIZE // 2] = True
    erased = paint(severe, "he", stroke, erase=True).channel("he")
    assert not erased[:, : SIZE // 2].any() and np.array_equal(erased[:, SIZE // 2:], plane[:, SIZE // 2:])


def test_grade_check_names_the_broken_rule(severe):
    check = grade_check(remove_lesions(severe, "he"))
    assert not check.consistent and check.estimated == 2
    assert "grade 3 needs" in check.summary() and "[0, 0, 0, 0]" in check.summary()
    laser = add_lesions(severe, "laser", 5, seed=0)
    assert grade_check(laser).estimated == 4 and "proliferative" in grade_check(laser).summary()
    healthy = sample(grade=0, size=SIZE, seed=0)
    assert grade_check(add_lesions(healthy, "ma", 3), 0).problems[0].startswith("grade 0 has no lesions")
    assert grade_check(healthy, 1).problems == ("grade 1 needs microaneurysms; there are none",)
    assert grade_check(sample(grade=2, size=SIZE, seed=1), 4).problems[0].startswith("grade 4 needs")


def test_rerender_changes_only_around_the_edit(severe):
    edited = remove_lesions(add_lesions(severe, "laser", 6, seed=4), "he")
    before, after = render_fundus(severe.masks, 3, 7), render_fundus(edited.masks, 3, 7)
    touched = (severe.channel("he") | edited.channel("laser")).astype(np.uint8)
    near = cv2.dilate(touched, np.ones((9, 9), np.uint8)) > 0  # the renderer's blurs reach ~3 px at 96 px
    diff = np.abs(before.astype(int) - after.astype(int)).max(axis=-1)
    assert diff[near].max() > 40  # the edit shows
    assert diff[~near].max() <= 2  # and nothing else moved (sensor noise and textures drawn independently)


def test_layout_edit_cli_then_render(tmp_path, capsys):
    layouts, edited, rendered = tmp_path / "l", tmp_path / "e", tmp_path / "r"
    main(["layout", "sample", "--grade", "3", "--n", "2", "--res", "64", "--out", str(layouts)])
    capsys.readouterr()
    main(["layout", "edit", str(layouts), "--out", str(edited), "--remove", "he", "--add", "ma:5", "--scale",
          "ex:2", "--grade", "2", "--seed", "1"])
    out = capsys.readouterr().out
    assert "edited 2 layout(s)" in out and "2/2" in out
    data = CanonicalDataset(edited)
    assert [s.grade for s in data.samples] == [2, 2]
    assert all(s.extra["grade_check"] == "ok" and s.extra["grade_rule"] == "2" for s in data.samples)
    assert all(not data.load_masks(s.name, ["he"]).any() for s in data.samples)
    assert data.samples[0].extra["seed"] == CanonicalDataset(layouts).samples[0].extra["seed"]
    assert json.loads((edited / "retina.json").read_text())["provenance"]["edits"].startswith("remove he")
    main(["render", "--masks", str(edited), "--out", str(rendered)])
    assert len(CanonicalDataset(rendered)) == 2
    main(["layout", "edit", str(layouts), "--out", str(tmp_path / "g4"), "--grade", "4"])
    assert "grade 4 needs" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--add", "ma"], "--add 'ma': expected CHANNEL:N"),
    (["--add", "ma:x"], "N must be a whole number"),
    (["--add", "od:3"], "not a lesion channel"),
    (["--scale", "ex:-1"], "positive number"),
    (["--scale", "ex:nan"], "positive number"),
    (["--move", "he:1"], "DX,DY"),
    (["--move", "fov:1,1"], "other than fov"),
    (["--remove", "vessels"], "not a lesion channel"),
    (["--grade", "7"], "outside 0-4"),
    (["--names", "nope"], "no sample named 'nope'"),
])
def test_layout_edit_refuses_bad_plans(tmp_path, capsys, args, message):
    layouts = tmp_path / "l"
    main(["layout", "sample", "--grade", "2", "--n", "1", "--res", "32", "--out", str(layouts)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["layout", "edit", str(layouts), "--out", str(tmp_path / "o"), *args])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_readme_edit_example_runs(capsys):
    """The README's Python example of retina.edit, run as written."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    example = next(block for block in blocks if "retina.edit" in block)
    assert len(example.strip().splitlines()) <= 5
    exec(compile(example, "README.md", "exec"), {})
    assert "stated grade 3 disagrees: grade 2" in capsys.readouterr().out
