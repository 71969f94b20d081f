"""The pieces the public-model recipe (experiments/public_idrid) is built from: `data resize`, `data annotate --add`,
`render --split`, the segmenter's green-CLAHE input and bf16 autocast, scoring inside the field of view, `runs
export`, and the model choice (shipped | procedural | checkpoint)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from cli_errors import expect_user_error

from retina.cli import main
from retina.common.canonical import CanonicalDataset
from retina.common.imageio import read_mask

pytestmark = pytest.mark.usefixtures("one_thread")


_fails = expect_user_error


@pytest.fixture(scope="module")
def split_phantom(tmp_path_factory):
    """12 phantoms at 64 px with a train/val/test column."""
    from retina.phantom.dataset import write_phantom

    root = tmp_path_factory.mktemp("recipe")
    write_phantom(root / "raw", n=12, size=64, grades=[0, 2, 4], seed=0)
    main(["data", "split", str(root / "raw"), "--fractions", "0.5,0.25,0.25", "--seed", "0", "--out",
          str(root / "set")])
    return root / "set"


@pytest.fixture(scope="module")
def vessel_segmenter(split_phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "vessels"
    main(["bench", "segment", "--real", str(split_phantom), "--channels", "vessels", "--ratios", "0", "--epochs", "1",
          "--res", "32", "--width", "4", "--input", "green-clahe", "--amp", "--save-model", "--device", "cpu",
          "--out", str(out)])
    return out


# -- data resize ---------------------------------------------------------------------------------------------
def test_resize_keeps_rows_and_max_pools_masks(split_phantom, tmp_path):
    # a single-pixel microaneurysm must survive a 2x shrink (max pooling), not vanish as with nearest
    source = tmp_path / "src"
    shutil.copytree(split_phantom, source)
    first = CanonicalDataset(source).samples[0].name
    ma = np.zeros((64, 64), bool)
    ma[33, 41] = True
    from retina.common.imageio import write_png

    write_png(source / "masks" / "ma" / f"{first}.png", ma)
    main(["data", "resize", str(source), "--res", "32", "--out", str(tmp_path / "small")])
    small, big = CanonicalDataset(tmp_path / "small"), CanonicalDataset(source)
    assert small.resolution == 32 and small.channels == big.channels
    assert [(s.name, s.grade, s.split, s.source) for s in small.samples] == \
           [(s.name, s.grade, s.split, s.source) for s in big.samples]
    assert small.load_image(first).shape == (32, 32, 3)
    shrunk = read_mask(small.mask_path("ma", first)) > 0
    assert shrunk.sum() == 1 and shrunk[16, 20]
    assert json.loads((tmp_path / "small" / "retina.json").read_text())["provenance"]["resized_from_resolution"] == 64


def test_resize_refuses_to_enlarge(split_phantom, tmp_path, capsys):
    _fails(["data", "resize", str(split_phantom), "--res", "128", "--out", str(tmp_path / "big")], capsys,
           "--res 128", "only shrinks")
    assert not (tmp_path / "big").exists()


# -- the segmenter: green-CLAHE input, FOV scoring, annotate --add -------------------------------------------
def test_green_clahe_reads_only_the_green_channel():
    from retina.bench.input_transform import GreenCLAHE

    image = torch.rand(2, 3, 64, 64) * 2 - 1
    out = GreenCLAHE()(image)
    assert out.shape == (2, 1, 64, 64) and out.min() >= -1 and out.max() <= 1
    other = image.clone()
    other[:, 0] = -other[:, 0]
    other[:, 2] = 0.3
    assert torch.equal(GreenCLAHE()(other), out)
    brighter = image.clone()
    brighter[:, 1] = (image[:, 1] + 1) * 0.6 - 1  # a darker green channel: CLAHE evens most of it out
    gap_raw = (brighter[:, 1] - image[:, 1]).abs().mean()
    gap_equalised = (GreenCLAHE()(brighter) - out).abs().mean()
    assert gap_equalised < gap_raw / 2


def test_segmenter_with_green_clahe_saves_and_loads(vessel_segmenter):
    from retina.bench.segment import load_segmenter

    model, spec, _ = load_segmenter(vessel_segmenter)
    assert spec.extra == {"input": "green-clahe"} and "input green-clahe" in model.description
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    result = json.loads((vessel_segmenter / "results.json").read_text())
    assert result["train"]["amp"] is True and result["scored_inside_fov"] is True


def test_scoring_inside_the_field_of_view(split_phantom):
    from retina.bench.segment import scoring_set

    index = CanonicalDataset(split_phantom)
    names = [s.name for s in index.subset("test")]
    data, fov = scoring_set(index, names, 32, ("vessels",))
    assert fov == 1 and data[0]["masks"].shape == (2, 32, 32)
    data, fov = scoring_set(index, names, 32, ("vessels", "fov"))  # the field of view itself segmented
    assert fov is None and data[0]["masks"].shape == (2, 32, 32)


def test_annotate_add_keeps_masks_and_marks_the_new_channel_weak(split_phantom, vessel_segmenter, tmp_path,
                                                                 capsys):
    lesions = tmp_path / "lesions"
    shutil.copytree(split_phantom, lesions)
    shutil.rmtree(lesions / "masks" / "vessels")
    out = tmp_path / "annotated"
    main(["data", "annotate", "--add", "--segmenter", str(vessel_segmenter), "--images", str(lesions), "--out",
          str(out), "--device", "cpu"])
    assert "added [vessels] to" in capsys.readouterr().out
    result, source = CanonicalDataset(out), CanonicalDataset(lesions)
    assert result.channels == tuple(c for c in CanonicalDataset(split_phantom).channels)
    for sample, kept in zip(result.samples, source.samples, strict=True):
        assert (sample.name, sample.grade, sample.split) == (kept.name, kept.grade, kept.split)
        assert sample.extra["weak"] == "vessels"
        assert np.array_equal(result.load_masks(sample.name, source.channels),
                              source.load_masks(sample.name, source.channels))
    info = json.loads((out / "retina.json").read_text())
    assert info["provenance"]["weak_channels"] == ["vessels"] and info["resolution"] == 64
    _fails(["data", "annotate", "--add", "--segmenter", str(vessel_segmenter), "--images", str(split_phantom),
            "--out", str(tmp_path / "again"), "--device", "cpu"], capsys, "already has", "vessels")


# -- render --split ------------------------------------------------------------------------------------------
def test_render_split_renders_those_rows_as_a_full_render_does(split_phantom, tmp_path, capsys):
    main(["render", "--masks", str(split_phantom), "--renderer", "procedural", "--out", str(tmp_path / "all")])
    main(["render", "--masks", str(split_phantom), "--split", "test", "--renderer", "procedural", "--out",
          str(tmp_path / "test")])
    full, test = CanonicalDataset(tmp_path / "all"), CanonicalDataset(tmp_path / "test")
    expected = [s.name for s in CanonicalDataset(split_phantom).subset("test")]
    assert test.names == expected and len(test) < len(full)
    for name in expected:
        assert np.array_equal(test.load_image(name), full.load_image(name))
    _fails(["render", "--masks", str(split_phantom), "--split", "holdout", "--out", str(tmp_path / "x")], capsys,
           "--split", "train, val, test")


# -- runs export and the model choice -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def render_run(split_phantom, tmp_path_factory):
    run = tmp_path_factory.mktemp("render") / "run"
    main(["render", "train", "--data", str(split_phantom), "--out", str(run), "--res", "32", "--width", "8",
          "--batch", "2", "--steps", "2", "--every", "2", "--stage", "coarse", "--grader", "tiny", "--grader-steps",
          "2", "--no-perceptual", "--amp", "--device", "cpu"])
    return run


def test_render_train_with_bf16_autocast_on_cpu(render_run):
    records = [json.loads(line) for line in (render_run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss_g"] for r in records if "loss_g" in r]
    assert losses and all(np.isfinite(losses))
    assert json.loads((render_run / "config.json").read_text())["config"]["amp"] is True


def test_export_keeps_what_rendering_needs_in_half_precision(render_run, split_phantom, tmp_path):
    from retina.common.checkpoint import Checkpoint
    from retina.common.fingerprint import generator_record
    from retina.render.model import load_renderer

    main(["runs", "export", str(render_run / "last.safetensors"), "--out", str(tmp_path / "model.safetensors")])
    exported, original = Checkpoint(tmp_path / "model.safetensors"), Checkpoint(render_run / "last.safetensors")
    assert {k.split(".")[0] for k in exported.tensors} <= {"g_ema", "space"}
    assert all(v.dtype == torch.float16 for v in exported.tensors.values() if v.is_floating_point())
    assert (tmp_path / "model.safetensors").stat().st_size < (render_run / "last.safetensors").stat().st_size / 4
    from retina.common.imageio import FILE_MODE

    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == FILE_MODE  # not safetensors' own 0600
    assert exported.config["exported_from"]["sha256"] == original.sha256
    record = generator_record("renderer", "drgan", tmp_path / "model.safetensors")
    assert record["training_set"]["count"] == len(CanonicalDataset(split_phantom).subset("train"))
    masks = torch.from_numpy(CanonicalDataset(split_phantom).load_masks(
        CanonicalDataset(split_phantom).names[0]).astype(np.float32))[None]
    masks = torch.nn.functional.adaptive_max_pool2d(masks, 16)  # the coarse stage draws at res / 2
    full, half = load_renderer(render_run / "last.safetensors"), load_renderer(tmp_path / "model.safetensors")
    a, b = full.render(masks, torch.tensor([2]), [0]), half.render(masks, torch.tensor([2]), [0])
    assert a.shape == b.shape and (a - b).abs().max() < 0.05  # fp16 rounding of the weights only


def test_model_choice(monkeypatch, tmp_path, capsys):
    from retina import shipped

    monkeypatch.setattr(shipped, "MODELS_DIR", tmp_path)
    monkeypatch.setenv("RETINA_MODELS", "shipped")
    assert shipped.resolve_model(None, "render", "--renderer") is None  # nothing packaged: procedural
    with pytest.raises(Exception, match="no packaged render model"):
        shipped.resolve_model("shipped", "render", "--renderer")
    (tmp_path / "render.safetensors").write_bytes(b"x")
    assert shipped.resolve_model(None, "render", "--renderer") == tmp_path / "render.safetensors"
    assert shipped.resolve_model("procedural", "render", "--renderer") is None
    monkeypatch.setenv("RETINA_MODELS", "procedural")
    assert shipped.resolve_model(None, "render", "--renderer") is None
    assert shipped.resolve_model("some/run", "layout", "--layout").as_posix() == "some/run"
    monkeypatch.setenv("RETINA_MODELS", "gan")
    _fails(["generate", "--n", "1", "--res", "32", "--out", str(tmp_path / "g"), "--device", "cpu"], capsys,
           "RETINA_MODELS=gan")



def test_sets_from_earlier_versions_keep_their_metadata_readable(split_phantom, tmp_path):
    """retina.json was dataset.json (the name nnU-Net's own metadata file has): an old set is still read, and the
    first rewrite moves its metadata to the new name."""
    old = tmp_path / "old"
    shutil.copytree(split_phantom, old)
    (old / "retina.json").rename(old / "dataset.json")
    data = CanonicalDataset(old)
    assert data.info_path.name == "dataset.json" and data.resolution == 64 and data.info["count"] == 12
    main(["data", "split", str(old), "--fractions", "0.5,0.25,0.25", "--seed", "1", "--in-place"])
    assert (old / "retina.json").is_file() and not (old / "dataset.json").exists()
    assert CanonicalDataset(old).info["resolution"] == 64


def test_layout_resume_keeps_bf16_and_the_memory_format(split_phantom, tmp_path):
    run = tmp_path / "layout"
    main(["layout", "train", "--data", str(split_phantom), "--res", "32", "--batch", "2", "--kimg", "0.002",
          "--snapshot-kimg", "0.002", "--amp", "--channels-last", "--device", "cpu", "--out", str(run), "--quiet"])
    main(["layout", "train", "--resume", str(run), "--kimg", "0.004", "--device", "cpu", "--quiet"])
    saved = json.loads((run / "config.json").read_text())["config"]["training"]
    assert saved["amp"] is True and saved["channels_last"] is True
    main(["layout", "train", "--resume", str(run), "--kimg", "0.006", "--no-amp", "--device", "cpu", "--quiet"])
    assert json.loads((run / "config.json").read_text())["config"]["training"]["amp"] is False
