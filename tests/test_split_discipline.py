"""Held-out discipline: `retina data split` into one set, trainers that read split=train only (poisoned test rows
are never opened), training-set fingerprints beside every checkpoint and in generated sets' provenance, and
benches that refuse a leaky synthetic set, label --allow-leak runs, repeat --seeds and score an external --test."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from retina.cli import main
from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.fingerprint import FINGERPRINT_FILE, image_digest, masks_digest

pytestmark = pytest.mark.usefixtures("one_thread_module")

LAYOUT = ["layout", "train", "--res", "16", "--batch", "4", "--channel-base", "2048", "--channel-max", "32",
          "--device", "cpu",
          "--quiet", "--ada-kimg", "0.05", "--kimg", "0.008", "--snapshot-kimg", "0.004"]
SEGMENT = ["bench", "segment", "--ratios", "0,0.25", "--epochs", "1", "--res", "32", "--width", "8",
           "--channels", "ex,he", "--device", "cpu"]


def _run(argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _splits(root) -> dict[str, str]:
    return {s.name: s.split for s in CanonicalDataset(root).samples}


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """``unsplit``: 20 phantoms, all rows train; ``split``: the same with a train/val/test column; ``poisoned``: a
    copy of ``split`` whose test rows' files are garbage; ``other`` and ``synthetic``: other phantom sets."""
    from retina.phantom.dataset import write_phantom

    root = tmp_path_factory.mktemp("discipline")
    unsplit = write_phantom(root / "unsplit", n=20, size=32, grades=[0, 1, 2, 3, 4], seed=0,
                            split_fractions=(1, 0, 0))
    main(["data", "split", str(unsplit), "--fractions", "0.5,0.25,0.25", "--seed", "3", "--out", str(root / "split")])
    poisoned = root / "poisoned"
    shutil.copytree(root / "split", poisoned)
    for name, split in _splits(poisoned).items():
        if split == "test":
            for path in [poisoned / "images" / f"{name}.png", *poisoned.glob(f"masks/*/{name}.png")]:
                path.write_bytes(b"not a png: a trainer opened a test row")
    other = write_phantom(root / "other", n=6, size=32, grades=[0, 1, 2, 3, 4], seed=9, split_fractions=(1, 0, 0))
    synthetic = write_phantom(root / "synthetic", n=6, size=32, grades=[0, 1, 2, 3, 4], seed=5)
    return {"root": root, "unsplit": unsplit, "split": root / "split", "poisoned": poisoned, "other": other,
            "synthetic": synthetic}


# -- retina data split, one set ----------------------------------------------------------------------------
def test_split_one_set_round_trip(sets, tmp_path, capsys):
    unsplit, split = sets["unsplit"], sets["split"]
    before, after = CanonicalDataset(unsplit), CanonicalDataset(split)
    assert after.names == before.names and [s.grade for s in after.samples] == [s.grade for s in before.samples]
    assert [s.extra for s in after.samples] == [s.extra for s in before.samples]
    counts = {k: list(_splits(split).values()).count(k) for k in ("train", "val", "test")}
    assert counts == {"train": 10, "val": 5, "test": 5}  # stratified: 4 per grade -> 2/1/1
    for grade in range(5):
        assert sorted(s.split for s in after.samples if s.grade == grade) == ["test", "train", "train", "val"]
    name = after.names[0]
    assert after.image_path(name).read_bytes() == before.image_path(name).read_bytes()  # copied byte for byte
    assert after.info["provenance"]["split"]["seed"] == 3
    # --in-place on a copy gives the same column; another seed another one
    copy = tmp_path / "copy"
    shutil.copytree(unsplit, copy)
    assert _run(["data", "split", str(copy), "--fractions", "0.5,0.25,0.25", "--seed", "3", "--in-place"],
                capsys)[0] == 0
    assert _splits(copy) == _splits(split)
    assert CanonicalDataset(copy).info["provenance"]["split"]["counts"]["test"] == 5
    main(["data", "split", str(copy), "--fractions", "0.5,0.25,0.25", "--seed", "4", "--in-place"])
    assert _splits(copy) != _splits(split)


@pytest.mark.parametrize("argv, message", [
    (["--fractions", "0.5,0.5", "--out", "X"], "three shares"),
    (["--fractions", "0.7,0.1,0.2"], "exactly one of --out DIR or --in-place"),
    (["--fractions", "0.7,0.1,0.2", "--in-place", "--train", "T"], "exclude each other"),
    ([], "--train DIR and --heldout DIR"),
])
def test_split_bad_options_are_one_line(sets, argv, message, capsys):
    code, _, err = _run(["data", "split", str(sets["unsplit"]), *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unknown_split_value_is_refused_and_no_split_column_means_train(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "labels.csv").write_text("name,grade,split,source\ns0,1,validation,t\n")
    with pytest.raises(RetinaError, match=r"labels.csv:2: split 'validation' is not one of train, val, test"):
        CanonicalDataset(root)
    (root / "labels.csv").write_text("name,grade,source\ns0,1,t\ns1,2,t\n")
    assert [s.split for s in CanonicalDataset(root).samples] == ["train", "train"]


def test_selection_falls_back_to_training_rows_and_says_so(sets, capsys):
    from retina.common.split import selection_rows, training_rows

    data = CanonicalDataset(sets["unsplit"])
    assert len(training_rows(data, "x")) == 20 and "nothing is held out" in capsys.readouterr().out
    rows, what = selection_rows(data, "x best")
    assert what == "train (no val rows)" and len(rows) == 20 and "no split=val rows" in capsys.readouterr().out
    rows, what = selection_rows(CanonicalDataset(sets["split"]), "x best")
    assert what == "val" and {s.split for s in rows} == {"val"}


# -- trainers read split=train only, and fingerprint it -------------------------------------------------------
def _check_fingerprint(run, data_root, checkpoint_config) -> dict:
    data = CanonicalDataset(data_root)
    document = json.loads((run / FINGERPRINT_FILE).read_text())
    train = [s.name for s in data.samples if s.split == "train"]
    assert [e["name"] for e in document["samples"]] == train
    for entry in document["samples"]:  # the digests are those of the content
        assert entry["image"] == image_digest(data.load_image(entry["name"]))
        assert entry["masks"] == masks_digest(data.load_masks(entry["name"]), data.channels)
    assert checkpoint_config["training_set"]["sha256"] == document["sha256"]
    assert checkpoint_config["training_set"]["fingerprint"] == FINGERPRINT_FILE
    return document


@pytest.fixture(scope="module")
def layout_run(sets):
    out = sets["root"] / "layout"
    main([*LAYOUT, "--data", str(sets["poisoned"]), "--out", str(out)])  # a test row read would fail
    return out


def test_layout_trains_on_train_rows_and_selects_best_on_val(layout_run, sets):
    from retina.common.checkpoint import Checkpoint

    for name in ("best", "last"):
        _check_fingerprint(layout_run, sets["split"], Checkpoint(layout_run / f"{name}.safetensors").config)
    snapshots = [json.loads(line) for line in (layout_run / "log.jsonl").read_text().splitlines()
                 if '"snapshot"' in line]
    assert len(snapshots) == 2 and all(r["selected_on"] == "val" and np.isfinite(r["layout_score"])
                                       for r in snapshots)
    assert Checkpoint(layout_run / "best.safetensors").config["best_selected_on"] == "val"


def test_render_and_aae_train_on_train_rows_only(sets, tmp_path):
    from retina.common.checkpoint import Checkpoint

    render = tmp_path / "render"
    main(["render", "train", "--data", str(sets["poisoned"]), "--out", str(render), "--steps", "2", "--every", "2",
          "--res", "32", "--width", "8", "--batch", "4", "--device", "cpu", "--grader", "tiny", "--grader-steps", "1",
          "--no-perceptual", "--stage", "coarse"])
    _check_fingerprint(render, sets["split"], Checkpoint(render / "last.safetensors").config)
    aae = tmp_path / "aae"
    main(["layout", "train-aae", "--data", str(sets["poisoned"]), "--res", "16", "--kimg", "0.016", "--batch", "8",
          "--latent", "8", "--width", "8", "--out", str(aae), "--quiet", "--device", "cpu"])
    _check_fingerprint(aae, sets["split"], Checkpoint(aae / "last.safetensors").config)


def test_generated_sets_carry_their_generators_fingerprints(layout_run, sets, tmp_path):
    from retina.common.fingerprint import generator_records

    generated = tmp_path / "gen"
    main(["generate", "--layout", str(layout_run), "--n", "3", "--res", "32", "--device", "cpu",
          "--out", str(generated)])
    records, unverifiable = generator_records(CanonicalDataset(generated))
    assert [r["role"] for r in records] == ["layout", "renderer"] and not unverifiable
    fingerprint = json.loads((layout_run / FINGERPRINT_FILE).read_text())
    assert records[0]["training_set"]["sha256"] == fingerprint["sha256"]
    assert records[1]["learned"] is False  # the procedural renderer saw no data
    sampled = tmp_path / "sampled"
    main(["layout", "sample", "--checkpoint", str(layout_run), "--n", "2", "--res", "16", "--device", "cpu",
          "--out", str(sampled)])
    assert generator_records(CanonicalDataset(sampled))[0][0]["training_set"]["sha256"] == fingerprint["sha256"]
    rendered = tmp_path / "rendered"  # rendering those masks keeps the layout model's record (nested provenance)
    main(["render", "--masks", str(sampled), "--out", str(rendered), "--device", "cpu"])
    records, _ = generator_records(CanonicalDataset(rendered))
    assert sorted(r["role"] for r in records) == ["layout", "renderer"]
    assert next(r for r in records if r["role"] == "layout")["training_set"]["sha256"] == fingerprint["sha256"]
    # a fingerprint file that is not the checkpoint's is refused
    (layout_run / FINGERPRINT_FILE).write_text(json.dumps({**fingerprint, "sha256": "0" * 64}))
    try:
        with pytest.raises(RetinaError, match="belongs to another run"):
            from retina.common.fingerprint import generator_record

            generator_record("layout", "stylegan", layout_run)
    finally:
        (layout_run / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=1) + "\n")


# -- benches ---------------------------------------------------------------------------------------------------
def test_bench_refuses_a_leaky_synthetic_set_and_labels_allow_leak(sets, tmp_path, capsys):
    unsplit = sets["unsplit"]
    layout = tmp_path / "layout-all"
    main([*LAYOUT, "--data", str(unsplit), "--out", str(layout)])  # trained on every row: nothing held out
    generated = tmp_path / "gen"
    main(["generate", "--layout", str(layout), "--n", "6", "--res", "32", "--device", "cpu",
          "--out", str(generated)])
    code, _, err = _run([*SEGMENT, "--real", str(unsplit), "--synthetic", str(generated), "--out",
                         str(tmp_path / "refused")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--allow-leak" in err
    first_test = err.split("matched by content: ")[1].split(" ")[0]  # e.g. unsplit/phantom_00003
    assert first_test.startswith("unsplit/phantom_") and f"{first_test} (layout stylegan)" in err
    assert "saw 4 of the 4 test images" in err  # a seeded 20 % of the 20 rows, all trained on
    assert not (tmp_path / "refused").exists()

    out = tmp_path / "leaky"
    code, stdout, _ = _run([*SEGMENT, "--real", str(unsplit), "--synthetic", str(generated), "--out", str(out),
                            "--allow-leak"], capsys)
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert result["leaky"] and result["leak"]["overlaps"]
    assert (out / "table.md").read_text().startswith("LEAKY")
    assert "bench segment (LEAKY)" in stdout.strip().splitlines()[-1]


def test_bench_refuses_a_set_rendered_from_test_masks(sets, tmp_path, capsys):
    rendered = tmp_path / "rendered"
    main(["render", "--masks", str(sets["split"]), "--out", str(rendered), "--device", "cpu"])
    code, _, err = _run(["bench", "vessels", "--real", str(sets["split"]), "--synthetic", str(rendered), "--res", "32",
                         "--width", "8", "--pretrain-epochs", "1", "--finetune-epochs", "1", "--device", "cpu",
                         "--out", str(tmp_path / "v")], capsys)
    test_names = [n for n, s in _splits(sets["split"]).items() if s == "test"]
    assert code == 2 and f"split/{sorted(test_names)[0]} (in the synthetic set)" in err


def test_bench_with_a_proper_split_seeds_and_external_test(layout_run, sets, tmp_path, capsys):
    generated = tmp_path / "gen"
    main(["generate", "--layout", str(layout_run), "--n", "6", "--res", "32", "--device", "cpu",
          "--out", str(generated)])
    out = tmp_path / "bench"
    code, stdout, err = _run([*SEGMENT, "--real", str(sets["split"]), "--synthetic", str(generated), "--seeds", "0,1",
                              "--test", str(sets["other"]), "--out", str(out)], capsys)
    assert code == 0, err
    result = json.loads((out / "results.json").read_text())
    test_names = sorted(n for n, s in _splits(sets["split"]).items() if s == "test")
    assert result["split"]["test"] == test_names and result["split"]["method"] == "the data set's split=test rows"
    assert not result["leaky"] and result["seeds"] == [0, 1]
    for row in result["rows"]:
        assert [r["seed"] for r in row["runs"]] == [0, 1]
        f1 = [r["metrics"]["mean"]["f1"] for r in row["runs"]]
        assert row["metrics"]["mean"]["f1"] == pytest.approx(np.mean(f1))
        assert row["sd"]["mean"]["f1"] == pytest.approx(np.std(f1, ddof=1), nan_ok=True)
        assert 0 <= row["external"]["mean"]["f1"] <= 1 and row["external_sd"]
    gain = result["rows"][1]["gain_f1"]
    runs0, runs25 = result["rows"][0]["runs"], result["rows"][1]["runs"]
    paired = [b["metrics"]["mean"]["f1"] - a["metrics"]["mean"]["f1"] for a, b in zip(runs0, runs25, strict=True)]
    assert gain["mean"] == pytest.approx(np.mean(paired)) and gain["sd"] == pytest.approx(np.std(paired, ddof=1))
    table = (out / "table.md").read_text()
    assert "±" in table and "external F1" in table and "F1 gain" in table and "LEAKY" not in table
    assert result["split"]["external"]["method"] == "all its rows (it has no split=test rows)"


def test_bench_grade_seeds_and_external(sets, tmp_path, capsys):
    out = tmp_path / "grade"
    code, _, err = _run(["bench", "grade", "--real", str(sets["split"]), "--synthetic", str(sets["synthetic"]),
                         "--width", "tiny", "--res", "32", "--epochs", "1", "--seeds", "0,1", "--test",
                         str(sets["other"]), "--device", "cpu", "--out", str(out)], capsys)
    assert code == 0, err
    document = json.loads((out / "results.json").read_text())
    assert "Tr-Real & Fake / Te-External" in document["results"] and len(document["runs"]) == 2
    assert np.isfinite(document["sd"]["Tr-Real / Te-Real"]["accuracy"])
    assert "accuracy gain from synthetic, Te-External" in document["gains"]
    assert "±" in (out / "table.md").read_text()


def test_bench_seeds_must_be_distinct_integers(sets, tmp_path, capsys):
    code, _, err = _run([*SEGMENT, "--real", str(sets["split"]), "--ratios", "0", "--seeds", "0,0",
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--seeds '0,0'" in err



def test_eval_layout_against_the_test_rows_only(sets, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert _run(["eval", "layout", "--real", str(sets["split"]), "--fake", str(sets["other"]), "--split", "test",
                 "--no-classifier", "--out", str(report)], capsys)[0] == 0
    document = json.loads(report.read_text())
    assert document["n_real"] == 5 and document["real_split"] == "test"
    code, _, err = _run(["eval", "layout", "--real", str(sets["unsplit"]), "--fake", str(sets["other"]),
                         "--split", "test"], capsys)
    assert code == 2 and "no split=test rows" in err


def test_a_generated_set_without_fingerprints_cannot_be_checked(sets, tmp_path):
    from retina.bench.protocol import check_leaks

    old = tmp_path / "old"
    shutil.copytree(sets["synthetic"], old)
    info = json.loads((old / "retina.json").read_text())
    info["provenance"] = {"command": "generate", "renderer": {"name": "drgan", "checkpoint_sha256": "ab"}}
    (old / "retina.json").write_text(json.dumps(info))
    real = CanonicalDataset(sets["split"])
    tests = [(real, [s.name for s in real.subset("test")])]
    with pytest.raises(RetinaError, match="cannot be checked for leaks: its generators"):
        check_leaks(old, tests, allow_leak=False)
    assert check_leaks(old, tests, allow_leak=True)["leaky"]
    assert not check_leaks(sets["synthetic"], tests, allow_leak=False)["leaky"]  # a phantom: drawn by rules


def test_leaks_are_matched_by_content_not_by_name(sets, tmp_path):
    from retina.bench.protocol import check_leaks
    from retina.common.canonical import CanonicalWriter

    real = CanonicalDataset(sets["split"])
    test = [s for s in real.samples if s.split == "test"]
    with CanonicalWriter(tmp_path / "renamed") as writer:  # a test image under another name, re-encoded
        writer.add("copy_0", image=real.load_image(test[0].name), masks=dict(zip(
            real.channels, real.load_masks(test[0].name), strict=True)), grade=test[0].grade)
    with pytest.raises(RetinaError, match=rf"saw 1 of the 5 test images.*split/{test[0].name} \(in the synthetic "
                                          r"set as copy_0\)"):
        check_leaks(tmp_path / "renamed", [(real, [s.name for s in test])], allow_leak=False)
    # same names, other content: no leak
    assert not check_leaks(sets["synthetic"], [(CanonicalDataset(sets["unsplit"]), ["phantom_00000"])],
                           allow_leak=False)["leaky"]


def test_resume_on_other_rows_is_refused_before_anything_is_written(layout_run, sets, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(layout_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = _run(["layout", "train", "--resume", str(run), "--data", str(sets["unsplit"]), "--kimg", "0.016",
                         "--quiet", "--device", "cpu"], capsys)
    assert code == 2 and "trained on other rows" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
