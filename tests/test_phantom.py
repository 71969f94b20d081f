"""The procedural phantom and `retina data phantom | inspect | preview`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from retina.cli import main
from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.errors import RetinaError
from retina.common.imageio import read_image, write_png
from retina.common.schema import CHANNEL_INDEX, CHANNELS, LESION_CHANNELS, NUM_CHANNELS
from retina.data.inspect import inspect_dataset
from retina.data.preview import LEGEND_HEIGHT, MARGIN, write_preview
from retina.phantom.dataset import PROVENANCE, write_phantom
from retina.phantom.layout import sample_layout
from retina.phantom.render import render_fundus

SEEDS = range(4)


def _lesions(masks: np.ndarray) -> dict[str, int]:
    return {c: int(masks[CHANNEL_INDEX[c]].sum()) for c in LESION_CHANNELS}


def test_same_seed_same_output_and_other_seed_differs():
    a, b, c = sample_layout(3, 64, seed=5), sample_layout(3, 64, seed=5), sample_layout(3, 64, seed=6)
    assert a.masks.shape == (NUM_CHANNELS, 64, 64) and a.masks.dtype == bool
    assert np.array_equal(a.masks, b.masks) and a.eye == b.eye and a.od_center == b.od_center
    assert not np.array_equal(a.masks, c.masks)
    image = render_fundus(a.masks, 3, seed=1)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, render_fundus(a.masks, 3, seed=1))
    assert not np.array_equal(image, render_fundus(a.masks, 3, seed=2))


@pytest.mark.parametrize("seed", SEEDS)
def test_lesions_follow_the_grade(seed):
    assert not any(_lesions(sample_layout(0, 64, seed).masks).values())
    mild = _lesions(sample_layout(1, 64, seed).masks)
    assert mild["ma"] > 0 and not any(v for c, v in mild.items() if c != "ma")
    moderate = _lesions(sample_layout(2, 64, seed).masks)
    assert moderate["he"] > 0 and moderate["ex"] > 0 and moderate["nv"] == 0
    severe = sample_layout(3, 64, seed)
    assert _lesions(severe.masks)["nv"] == 0
    # Severe NPDR: haemorrhages in all four quadrants around the fovea.
    ys, xs = np.nonzero(severe.masks[CHANNEL_INDEX["he"]])
    quadrants = {(bool(x > severe.fovea[0]), bool(y > severe.fovea[1])) for x, y in zip(xs, ys, strict=True)}
    assert len(quadrants) == 4
    assert _lesions(sample_layout(4, 64, seed).masks)["nv"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_one_optic_disc_touched_by_vessels_on_the_nasal_side(seed):
    layout = sample_layout(seed % 5, 48, seed)
    disc = layout.masks[CHANNEL_INDEX["od"]]
    assert ndimage.label(disc)[1] == 1
    assert (ndimage.binary_dilation(disc, iterations=1) & layout.masks[CHANNEL_INDEX["vessels"]]).any()
    nasal = 1 if layout.eye == "right" else -1
    assert nasal * (layout.od_center[0] - layout.fovea[0]) > 0
    fov = layout.masks[CHANNEL_INDEX["fov"]]
    assert not (layout.masks & ~fov).any()  # nothing outside the field of view


def test_render_accepts_any_mask_stack_and_refuses_bad_shapes():
    masks = np.zeros((NUM_CHANNELS, 40, 40), bool)
    masks[CHANNEL_INDEX["ex"], 10:14, 10:14] = True
    image = render_fundus(masks, 2, seed=0)  # no FOV, no disc: full frame, default disc position
    assert image.shape == (40, 40, 3) and image[0, 0].sum() > 0  # full frame counts as field of view
    exudate, background = image[11:13, 11:13].mean((0, 1)), image[30:34, 4:8].mean((0, 1))
    assert exudate[1] > background[1] + 40  # hard exudates are yellow: much more green than the red fundus
    with pytest.raises(RetinaError, match="mask stack"):
        render_fundus(np.zeros((3, 8, 8), bool), 0, 0)
    with pytest.raises(RetinaError):
        sample_layout(7, 32, 0)


def test_write_phantom_is_balanced_and_says_it_is_synthetic(tmp_path):
    root = write_phantom(tmp_path / "ph", n=10, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    data = CanonicalDataset(root)
    assert len(data) == 10 and data.missing_channels == ()
    assert sorted(s.grade for s in data.samples) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert data.info["provenance"]["description"] == PROVENANCE and "not real data" in PROVENANCE
    again = write_phantom(tmp_path / "ph2", n=10, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    assert np.array_equal(read_image(root / "images/phantom_00004.png"), read_image(again / "images/phantom_00004.png"))
    # Per-sample seeds: the first images of a bigger set are the same images.
    bigger = write_phantom(tmp_path / "ph3", n=12, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    name = "images/phantom_00003.png"
    assert np.array_equal(read_image(root / name), read_image(bigger / name))


def test_cli_phantom_inspect_preview(tmp_path, capsys):
    out = tmp_path / "ph"
    main(["data", "phantom", "--n", "10", "--res", "32", "--grades", "0-4", "--seed", "0", "--out", str(out)])
    assert "phantom: 10 images" in capsys.readouterr().out
    main(["data", "inspect", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 10 and report["grades"] == {str(g): 2 for g in range(5)} and report["problems"] == []
    assert report["masks"]["ma"]["0"]["components"] == 0 and report["masks"]["ma"]["1"]["components"] > 0
    main(["data", "inspect", str(out)])
    assert "no problems found" in capsys.readouterr().out
    grid = tmp_path / "grid.png"
    main(["data", "preview", str(out), "--out", str(grid), "--per-grade", "2"])
    image = read_image(grid)
    assert image.shape[0] >= 5 * 96 and image.shape[1] >= 2 * 96


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    for argv in (
        ["data", "phantom", "--n", "2", "--res", "32", "--grades", "7", "--out", str(tmp_path / "x")],
        ["data", "inspect", str(tmp_path / "missing")],
        ["data", "preview", str(tmp_path / "missing"), "--out", str(tmp_path / "g.png")],
    ):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_inspect_reports_bad_files_without_stopping(tmp_path):
    root = write_phantom(tmp_path / "ph", n=5, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    write_png(root / "masks/he/phantom_00001.png", np.zeros((16, 16), bool))  # wrong size
    image = root / "images/phantom_00002.png"
    image.write_bytes(image.read_bytes()[:60])  # truncated
    (root / "images/phantom_00003.png").unlink()  # its masks stay: masks without image
    write_png(root / "images/stray.png", np.zeros((32, 32, 3), np.uint8))  # not in labels.csv
    problems = inspect_dataset(root)["problems"]
    kinds = {(p["kind"], p["file"].split("/")[-1]) for p in problems}
    assert ("size mismatch", "phantom_00001.png") in kinds
    assert ("unreadable", "phantom_00002.png") in kinds
    assert ("mask without image", "phantom_00003.png") in kinds
    assert ("image without row", "stray.png") in kinds
    # The rest of the set was still scanned.
    assert inspect_dataset(root)["masks"]["fov"]["4"]["images"] == 1


def test_preview_of_a_masks_only_set_draws_on_black(tmp_path):
    with CanonicalWriter(tmp_path / "layouts", resolution=32) as writer:
        for grade in (0, 4):
            layout = sample_layout(grade, 32, seed=grade)
            writer.add(f"l{grade}", masks={"ma": layout.masks[CHANNEL_INDEX["ma"]],
                                           "od": layout.masks[CHANNEL_INDEX["od"]]}, grade=grade)
    path, shown, skipped = write_preview(tmp_path / "layouts", tmp_path / "grid.png", per_grade=3)
    grid = read_image(path)
    assert shown == 2 and skipped == [] and grid.shape == (2 * 96 + LEGEND_HEIGHT, MARGIN + 3 * 96, 3)
    tiles = grid[: 2 * 96, MARGIN:MARGIN + 96]
    assert (tiles == 0).all(axis=2).mean() > 0.8  # black background, disc and lesions in colour
    assert (tiles == CHANNELS[CHANNEL_INDEX["od"]].color).all(axis=2).any()
    with pytest.raises(RetinaError, match="PNG"):
        write_preview(tmp_path / "layouts", tmp_path / "grid.jpg")
