"""`retina render --masks` and `retina generate` with the procedural models (CPU, 32 px)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from cli_errors import expect_user_error

from retina.cli import main
from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.grade_rule import grade_from_stack
from retina.common.imageio import read_image
from retina.common.schema import CHANNEL_INDEX, CHANNEL_NAMES, NUM_CHANNELS
from retina.render.procedural import ProceduralRenderer

pytestmark = pytest.mark.usefixtures("one_thread_module")
PHANTOM_N = 6  # the size of the shared `phantom` fixture (conftest)


def _rows(folder):
    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _images(folder):
    data = CanonicalDataset(folder)
    return {name: read_image(data.image_path(name)) for name in data.names}


_fails = expect_user_error


def test_render_writes_canonical_set_with_mask_copies(phantom, tmp_path, capsys):
    main(["render", "--masks", str(phantom), "--out", str(tmp_path / "r"), "--seed", "1", "--device", "cpu"])
    assert "procedural preview" in capsys.readouterr().out
    source, rendered = CanonicalDataset(phantom), CanonicalDataset(tmp_path / "r")
    assert rendered.names == source.names and rendered.has_images
    assert rendered.channels == CHANNEL_NAMES
    for name in source.names:
        assert np.array_equal(rendered.load_masks(name), source.load_masks(name))
        image = rendered.load_image(name)
        assert image.shape == (32, 32, 3) and image.std() > 0
    rows = _rows(tmp_path / "r")
    assert [int(r["grade"]) for r in rows] == [s.grade for s in source.samples]
    assert {r["model"] for r in rows} == {"procedural"} and {r["grade_source"] for r in rows} == {"label"}
    assert len({r["seed"] for r in rows}) == len(rows)
    provenance = rendered.info["provenance"]
    assert provenance["preview"] is True and provenance["renderer"]["name"] == "procedural"
    assert not (tmp_path / "r.partial").exists()


def test_render_is_deterministic_with_seed_and_independent_of_batch(phantom, tmp_path):
    for name, seed, batch in (("a", "5", "4"), ("b", "5", "1"), ("c", "6", "4")):
        main(["render", "--masks", str(phantom), "--out", str(tmp_path / name), "--seed", seed, "--batch", batch])
    a, b, c = (_images(tmp_path / n) for n in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_render_missing_channel_is_one_line_error_without_output(phantom, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(phantom, broken)
    shutil.rmtree(broken / "masks" / "vessels")
    out = tmp_path / "out"
    _fails(["render", "--masks", str(broken), "--out", str(out)], capsys, str(broken), "vessels")
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    # An absent lesion folder is "no such lesion" for the procedural renderer: rendered, and not copied.
    shutil.copytree(phantom / "masks" / "vessels", broken / "masks" / "vessels")
    shutil.rmtree(broken / "masks" / "nv")
    main(["render", "--masks", str(broken), "--out", str(out)])
    assert "nv" not in CanonicalDataset(out).channels and len(CanonicalDataset(out)) == 6


def test_render_bad_grade_and_bad_options_exit_2(phantom, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(["render", "--masks", str(phantom), "--out", str(out), "--grade", "5"], capsys, "--grade", "0-4")
    _fails(["render", "--masks", str(phantom), "--out", str(out), "--batch", "0"], capsys, "--batch")
    _fails(["render", "--masks", str(tmp_path / "nowhere"), "--out", str(out)], capsys, "not found")
    _fails(["render", "--masks", str(phantom)], capsys, "--out")
    _fails(["render", "--masks", str(phantom), "--out", str(out), "--checkpoint", str(tmp_path / "x.pt")],
           capsys, "pickle")
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_render_resizes_masks_with_max_pooling_and_fills_grades(tmp_path, capsys):
    from retina.phantom.layout import sample_layout
    from retina.render.infer import render_folder

    masks = sample_layout(2, 48, seed=3).masks.copy()
    masks[CHANNEL_INDEX["ma"]] = False
    masks[CHANNEL_INDEX["ma"], 10, 11] = True  # a one-pixel microaneurysm must survive 48 -> 16
    with CanonicalWriter(tmp_path / "in") as writer:
        writer.add("a", masks=dict(zip(CHANNEL_NAMES, masks, strict=True)), grade=None)
        writer.add("b", masks=dict(zip(CHANNEL_NAMES, masks, strict=True)), grade=1)
    render_folder(tmp_path / "in", tmp_path / "o1", ProceduralRenderer(res=16), grade=3, show_progress=False)
    assert "resized" in capsys.readouterr().err
    out = CanonicalDataset(tmp_path / "o1")
    assert out.load_image("a").shape == (16, 16, 3) and out.load_masks("a").shape == (NUM_CHANNELS, 16, 16)
    assert out.load_masks("a")[CHANNEL_INDEX["ma"]].sum() == 1
    rows = {r["name"]: r for r in _rows(tmp_path / "o1")}
    assert (rows["a"]["grade"], rows["a"]["grade_source"]) == ("3", "option")
    assert (rows["b"]["grade"], rows["b"]["grade_source"]) == ("1", "label")
    render_folder(tmp_path / "in", tmp_path / "o2", ProceduralRenderer(), show_progress=False)
    rows = {r["name"]: r for r in _rows(tmp_path / "o2")}
    assert rows["a"]["grade_source"] == "predicted" and rows["a"]["grade"] == str(grade_from_stack(masks))


def test_generate_uniform_is_balanced_and_self_describing(tmp_path, capsys):
    main(["generate", "--n", "10", "--res", "32", "--seed", "2", "--batch", "3", "--device", "cpu",
          "--out", str(tmp_path / "g")])
    assert "procedural preview" in capsys.readouterr().out
    data = CanonicalDataset(tmp_path / "g")
    assert len(data) == 10 and data.has_images and data.channels == CHANNEL_NAMES
    assert sorted(s.grade for s in data.samples) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    rows = _rows(tmp_path / "g")
    assert len({r["seed"] for r in rows}) == 10
    assert {r["model"] for r in rows} == {"procedural"} and {r["layout_model"] for r in rows} == {"procedural"}
    info = json.loads((tmp_path / "g" / "retina.json").read_text())
    assert info["grades"] == {str(g): 2 for g in range(5)}
    provenance = info["provenance"]
    assert provenance["renderer"]["name"] == "procedural" and provenance["layout"]["name"] == "procedural"
    assert provenance["seed"] == 2 and provenance["preview"] is True
    assert data.load_image(data.names[0]).shape == (32, 32, 3)


def test_generate_post_processes_gan_layouts_unless_raw(tmp_path, monkeypatch, capsys):
    from scipy import ndimage

    import retina.layout.model as layout_model
    from retina.layout.model import ProceduralLayout

    class TwoDiscs(ProceduralLayout):  # a layout model with a GAN's failure: a second disc, a holed field
        name, checkpoint_hash = "two-discs", "cafe"

        def sample(self, grades, seeds, res, truncation=1.0):
            masks = super().sample(grades, seeds, res, truncation)
            masks[:, CHANNEL_NAMES.index("od"), 2:5, 2:5] = True
            masks[:, CHANNEL_NAMES.index("fov"), res // 2 - 2:res // 2 + 2, res // 2 - 2:res // 2 + 2] = False
            return masks

    monkeypatch.setattr(layout_model, "load_layout_model", lambda *args, **kwargs: TwoDiscs())
    for option, discs, holes in (([], 1, 0), (["--raw"], 2, 1)):
        out = tmp_path / f"g{len(option)}"
        main(["generate", "--n", "3", "--res", "32", "--device", "cpu", *option, "--out", str(out)])
        data = CanonicalDataset(out)
        for name in data.names:
            masks = data.load_masks(name) > 0
            od, fov = masks[CHANNEL_NAMES.index("od")], masks[CHANNEL_NAMES.index("fov")]
            assert ndimage.label(od, structure=np.ones((3, 3)))[1] == discs
            assert int((ndimage.binary_fill_holes(fov) & ~fov).any()) == holes
        post = json.loads((out / "retina.json").read_text())["provenance"]["post_process"]
        assert post.startswith("none") == bool(option)
    assert "3 layout(s) post-processed" in capsys.readouterr().out


def test_generate_shards_are_disjoint_and_merge_to_the_unsharded_run(tmp_path, monkeypatch):
    common = ["generate", "--n", "7", "--res", "32", "--batch", "2", "--seed", "4"]
    main([*common, "--out", str(tmp_path / "all")])
    main([*common, "--shard", "0/2", "--out", str(tmp_path / "s0")])
    main([*common, "--shard", "1/2", "--batch", "5", "--out", str(tmp_path / "s1")])
    whole, first, second = (_rows(tmp_path / n) for n in ("all", "s0", "s1"))
    assert not {r["name"] for r in first} & {r["name"] for r in second}
    assert not {r["seed"] for r in first} & {r["seed"] for r in second}
    assert sorted(first + second, key=lambda r: r["name"]) == whole
    merged = {**_images(tmp_path / "s0"), **_images(tmp_path / "s1")}
    unsharded = _images(tmp_path / "all")
    assert merged.keys() == unsharded.keys() and all(np.array_equal(merged[k], unsharded[k]) for k in merged)
    # Under torchrun each rank takes shard rank/world by itself.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    main([*common, "--out", str(tmp_path / "ddp")])
    assert _rows(tmp_path / "ddp" / "shard-1-of-2") == second


def test_generate_bad_input_exit_2_without_output(tmp_path, capsys):
    out = tmp_path / "g"
    _fails(["generate", "--n", "4", "--shard", "2/2", "--out", str(out)], capsys, "--shard")
    _fails(["generate", "--n", "4", "--shard", "x", "--out", str(out)], capsys, "--shard")
    _fails(["generate", "--n", "4", "--grades", "9", "--out", str(out)], capsys, "0-4")
    _fails(["generate", "--n", "0", "--out", str(out)], capsys, "--n")
    assert not out.exists() and not (tmp_path / "g.partial").exists()


def _untrained_render_checkpoint(path, arch="drgan", res=32, width=8):
    """An untrained renderer saved the way `retina render train` saves one (EMA weights under g_ema)."""
    from retina.common.checkpoint import module_tensors, save_checkpoint
    from retina.render.config import RenderConfig
    from retina.render.model import build_generator

    config = RenderConfig(arch=arch, res=res, width=width, residual_blocks=1, grader_arch="tiny")
    generator = build_generator(config, 0)
    save_checkpoint(path, module_tensors("g_ema", generator), {"kind": "render", **config.to_dict(), "grading_dim": 0})
    return path.with_suffix(".safetensors")


def test_render_and_generate_with_an_untrained_drgan_checkpoint(phantom, tmp_path, capsys):
    checkpoint = _untrained_render_checkpoint(tmp_path / "drgan")
    for name in ("a", "b"):
        main(["render", "--masks", str(phantom), "--out", str(tmp_path / name), "--checkpoint", str(checkpoint),
              "--seed", "3", "--batch", "4", "--device", "cpu"])
    assert "preview" not in capsys.readouterr().out
    a, b = _images(tmp_path / "a"), _images(tmp_path / "b")
    assert len(a) == 6 and all(a[k].shape == (32, 32, 3) and np.array_equal(a[k], b[k]) for k in a)
    # channels_last is a speed option: the same images up to float summation order (a grey level at most)
    main(["render", "--masks", str(phantom), "--out", str(tmp_path / "cl"), "--checkpoint", str(checkpoint),
          "--seed", "3", "--batch", "4", "--device", "cpu", "--no-channels-last"])
    last = _images(tmp_path / "cl")
    assert all(np.abs(last[k].astype(int) - a[k].astype(int)).max() <= 1 for k in a)
    provenance = CanonicalDataset(tmp_path / "a").info["provenance"]
    assert provenance["renderer"]["name"] == "drgan" and provenance["preview"] is False
    assert len(provenance["renderer"]["checkpoint_sha256"]) == 64
    assert {r["model"] for r in _rows(tmp_path / "a")} == {"drgan"}

    main(["generate", "--n", "3", "--renderer", str(checkpoint), "--out", str(tmp_path / "g")])
    generated = CanonicalDataset(tmp_path / "g")
    assert len(generated) == 3 and generated.load_image(generated.names[0]).shape == (32, 32, 3)
    assert generated.info["provenance"]["renderer"]["name"] == "drgan"
    _fails(["generate", "--n", "3", "--renderer", str(checkpoint), "--res", "64", "--out", str(tmp_path / "x")],
           capsys, "--res")
    # A checkpoint of another kind is refused in one line.
    from retina.common.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "layout", {}, {"kind": "layout", "arch": "stylegan"})
    _fails(["render", "--masks", str(phantom), "--out", str(tmp_path / "x"), "--checkpoint",
            str(tmp_path / "layout.safetensors")], capsys, "render")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_generate_resume_after_a_kill_finishes_the_same_set(tmp_path):
    common = ["generate", "--n", "4", "--res", "32", "--seed", "9"]
    main([*common, "--out", str(tmp_path / "whole")])
    # What a SIGKILL after two samples leaves: OUT.partial with two rows and no retina.json.
    partial = tmp_path / "cut.partial"
    shutil.copytree(tmp_path / "whole", partial)
    (partial / "retina.json").unlink()
    lines = (partial / "labels.csv").read_text().splitlines(keepends=True)
    (partial / "labels.csv").write_text("".join(lines[:3]))
    main([*common, "--resume", "--out", str(tmp_path / "cut")])
    assert _rows(tmp_path / "cut") == _rows(tmp_path / "whole")
    whole, cut = _images(tmp_path / "whole"), _images(tmp_path / "cut")
    assert all(np.array_equal(whole[k], cut[k]) for k in whole) and not partial.exists()
