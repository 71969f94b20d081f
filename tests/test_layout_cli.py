"""`retina layout train|sample`: tiny training on a phantom set, checkpoint round trip, resume, sampling,
one-line errors (exit 2), and resume after SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from retina.cli import main
from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.checkpoint import Checkpoint, save_checkpoint

TRAIN = ["layout", "train", "--res", "16", "--batch", "4", "--channel-base", "2048", "--channel-max", "32",
         "--device", "cpu", "--quiet", "--ada-kimg", "0.05"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(phantom):
    torch.set_num_threads(1)
    out = phantom.parent / "run"
    main([*TRAIN, "--data", str(phantom), "--kimg", "0.024", "--snapshot-kimg", "0.012", "--out", str(out)])
    return out


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _error(argv, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_train_writes_checkpoints_grid_and_log(run):
    last = Checkpoint(run / "last.safetensors").expect("layout", "stylegan")
    assert last.state["cur_nimg"] == 24 and last.state["step"] == 6
    assert last.config["generator"]["res"] == 16 and last.config["generator"]["channels"][0] == "vessels"
    assert (run / "best.safetensors").is_file() and (run / "config.json").is_file()
    assert len(list((run / "samples").glob("*.png"))) == 2
    steps = [r for r in _log(run) if "loss_g" in r]
    assert [r["nimg"] for r in steps] == [4, 8, 12, 16, 20, 24]
    assert all(np.isfinite(r["loss_g"]) and np.isfinite(r["loss_d"]) for r in steps)
    # p is updated every 4 D steps (its direction is tested on AdaptiveAugment itself), never outside [0, 1]
    assert steps[0]["ada_p"] == steps[2]["ada_p"] == 0.0 and all(0.0 <= r["ada_p"] <= 1.0 for r in steps)
    assert last.state["ada"]["p"] == steps[-1]["ada_p"]
    assert any("layout_score" in r for r in _log(run))


def test_resume_restores_counters_ada_and_optimisers(run):
    before = Checkpoint(run / "last.safetensors")
    main([*TRAIN[:2], "--resume", str(run), "--kimg", "0.032", "--quiet", "--device", "cpu"])
    after = Checkpoint(run / "last.safetensors")
    assert after.state["cur_nimg"] == 32 and after.state["step"] == 8
    assert after.config["generator"] == before.config["generator"]
    # Adam step counts continue (2 G steps per D step) rather than restarting at 0.
    assert int(after.state["opt_g"]["state"][0]["step"]) == 16 == int(before.state["opt_g"]["state"][0]["step"]) + 4
    assert int(after.state["opt_d"]["state"][0]["step"]) == 8
    steps = [r for r in _log(run) if "loss_g" in r]
    assert [r["nimg"] for r in steps] == [4 * i for i in range(1, 9)]
    assert steps[6]["ada_p"] == pytest.approx(before.state["ada"]["p"])  # p kept (next update at step 8)


def test_resume_trains_to_the_saved_total_or_a_larger_kimg(run, tmp_path, capsys):
    import shutil

    done = Checkpoint(run / "last.safetensors").state["cur_nimg"] / 1000
    resume = [*TRAIN[:2], "--quiet", "--device", "cpu", "--resume"]
    refused = f"has already trained {done:g} kimg; pass --kimg larger than {done:g} to continue"
    assert refused in _error([*resume, str(run), "--kimg", str(done)], capsys)  # not silently a no-op
    assert refused in _error([*resume, str(run)], capsys)  # no --kimg: the saved total, reached already
    # a run cut before its total (its checkpoint records kimg = done + 0.004) goes on to it without --kimg
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    last = Checkpoint(cut / "last.safetensors")
    config = {**last.config, "training": {**last.config["training"], "kimg": done + 0.004}}
    save_checkpoint(cut / "last", last.tensors, config, last.state)
    main([*resume, str(cut)])
    assert Checkpoint(cut / "last.safetensors").state["cur_nimg"] == round(done * 1000) + 4


def test_resume_of_a_best_kept_by_another_metric_starts_the_best_afresh(run, tmp_path):
    import shutil

    old = tmp_path / "old-metric"
    shutil.copytree(run, old)
    last = Checkpoint(old / "last.safetensors")
    done = last.state["cur_nimg"]
    state = {k: v for k, v in last.state.items() if k != "best_metric"}
    state["best_score"] = -1.0  # unbeatable by any score: only a reset lets a new best be written
    save_checkpoint(old / "last", last.tensors, last.config, state)
    main([*TRAIN[:2], "--quiet", "--device", "cpu", "--resume", str(old), "--kimg", str((done + 4) / 1000)])
    best = Checkpoint(old / "best.safetensors")
    assert best.state["cur_nimg"] == done + 4 and best.state["best_metric"] == last.state["best_metric"]
    assert best.state["best_score"] > -1.0


def test_sample_with_checkpoint_is_deterministic(run, tmp_path):
    args = ["layout", "sample", "--checkpoint", str(run / "best.safetensors"), "--grade", "0,4", "--n", "4",
            "--res", "32", "--seed", "3", "--device", "cpu", "--raw"]
    main([*args, "--out", str(tmp_path / "a")])
    main([*args, "--out", str(tmp_path / "b")])
    a, b = CanonicalDataset(tmp_path / "a"), CanonicalDataset(tmp_path / "b")
    assert [s.grade for s in a.samples] == [0, 4, 0, 4] and set(a.channels) == set(Checkpoint(run).config[
        "generator"]["channels"])
    for name in a.names:
        np.testing.assert_array_equal(a.load_masks(name), b.load_masks(name))
    with open(tmp_path / "a" / "labels.csv") as handle:
        row = next(csv.DictReader(handle))
    assert row["model"] == "stylegan" and len(row["checkpoint"]) == 12 and row["seed"]
    assert (tmp_path / "a" / "preview.png").is_file()


def test_train_options_reach_the_checkpoint_and_it_samples(phantom, tmp_path):
    out = tmp_path / "options"
    main([*TRAIN, "--data", str(phantom), "--kimg", "0.008", "--out", str(out), "--no-d-classifier", "--soft-fakes",
          "--ac-on-fakes", "--blur-all"])
    config = Checkpoint(out).config
    assert not config["generator"]["d_classifier"] and config["train"]["ac_on_fakes"]
    assert not config["train"]["hard_fakes"] and not config["train"]["blur_lesions_only"]
    out = tmp_path / "options2"
    main([*TRAIN, "--data", str(phantom), "--kimg", "0.008", "--out", str(out), "--d-classifier", "--hard-fakes",
          "--ac-on-reals", "--blur-lesions-only"])
    config = Checkpoint(out).config
    assert config["generator"]["d_classifier"] and not config["train"]["ac_on_fakes"]
    assert config["train"]["hard_fakes"] and config["train"]["blur_lesions_only"]
    main(["layout", "sample", "--checkpoint", str(out), "--grade", "3", "--n", "2", "--res", "16", "--device", "cpu",
          "--out", str(tmp_path / "s")])
    assert len(CanonicalDataset(tmp_path / "s")) == 2


def test_sample_procedural_without_checkpoint(tmp_path):
    main(["layout", "sample", "--grade", "4", "--n", "2", "--res", "32", "--out", str(tmp_path / "p")])
    data = CanonicalDataset(tmp_path / "p")
    assert len(data) == 2 and "vessels" in data.channels and data.samples[0].grade == 4
    assert data.samples[0].extra["model"] == "procedural"


@pytest.mark.parametrize("grade", ["5", "-1", "x"])
def test_bad_grade_is_one_line_exit_2(grade, tmp_path, capsys):
    line = _error(["layout", "sample", "--grade", grade, "--n", "2", "--res", "32", "--out", str(tmp_path / "o")],
                  capsys)
    assert "grade" in line
    assert not (tmp_path / "o").exists()


def test_bad_checkpoints_and_data_are_one_line_exit_2(run, phantom, tmp_path, capsys):
    assert "acgan" in _error([*TRAIN[:2], "--resume", str(run), "--arch", "acgan", "--kimg", "1"], capsys)
    assert "--res" in _error([*TRAIN[:2], "--resume", str(run), "--res", "64", "--kimg", "1"], capsys)
    save_checkpoint(tmp_path / "render", {"x": torch.zeros(1)}, {"kind": "render", "arch": "spade"})
    sample = ["layout", "sample", "--n", "1", "--res", "16", "--out", str(tmp_path / "o"), "--checkpoint"]
    assert "render" in _error([*sample, str(tmp_path / "render.safetensors")], capsys)
    assert "not found" in _error([*sample, str(tmp_path / "missing.safetensors")], capsys)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes((run / "last.safetensors").read_bytes()[:300])
    assert "truncated" in _error([*sample, str(corrupt)], capsys)
    assert "pickle" in _error([*sample, str(tmp_path / "model.pt")], capsys)
    with CanonicalWriter(tmp_path / "nomasks") as writer:
        writer.add("a", image=np.zeros((16, 16, 3), np.uint8), grade=1)
    assert "masks" in _error([*TRAIN, "--data", str(tmp_path / "nomasks"), "--out", str(tmp_path / "r")], capsys)
    assert not (tmp_path / "o").exists()


def test_sigkill_then_resume_continues_the_loss_curve(phantom, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "retina.cli", *TRAIN, "--data", str(phantom), "--kimg", "10",
               "--snapshot-kimg", "0.008", "--out", str(out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 150
        while not (out / "last.safetensors").is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # let it run past the checkpoint, maybe into the next one
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = Checkpoint(out / "last.safetensors").state["cur_nimg"]  # the last complete checkpoint
    assert saved >= 8
    main([*TRAIN[:2], "--resume", str(out), "--kimg", str((saved + 8) / 1000), "--quiet", "--device", "cpu"])
    steps = [r["nimg"] for r in _log(out) if "loss_g" in r]
    assert steps == list(range(4, saved + 9, 4))  # no gap, no duplicate: the curve continues
    assert Checkpoint(out / "last.safetensors").state["cur_nimg"] == saved + 8


def test_run_has_tensorboard_events_and_plots(run, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    losses = events.Scalars("loss_g")
    logged = [r for r in _log(run) if "loss_g" in r]
    assert [e.step for e in losses][:len(logged)] == [r["nimg"] for r in logged]
    assert losses[0].value == pytest.approx(logged[0]["loss_g"])
    assert "ada_p" in events.Tags()["scalars"] and "layout_score" in events.Tags()["scalars"]
    assert events.Tags()["images"] == ["samples"]
    assert {12, 24} <= {e.step for e in events.Images("samples")}  # a grid per snapshot (later tests resume the run)
    main(["runs", "plot", str(run), "--out", str(tmp_path / "curves.png")])
    assert "curves of" in capsys.readouterr().out
    from PIL import Image

    assert Image.open(tmp_path / "curves.png").size[0] > 600
    assert "log.jsonl: not found" in _error(["runs", "plot", str(tmp_path)], capsys)


SMALL_TRAIN = ["layout", "train", "--res", "16", "--batch", "4", "--channel-base", "512", "--channel-max", "16",
               "--z-dim", "8", "--w-dim", "8", "--device", "cpu", "--quiet"]


def test_preset_options_and_resume_disagreement_are_one_line_errors(phantom, tmp_path, capsys):
    base = ["layout", "train", "--data", str(phantom), "--out", str(tmp_path / "r"), "--device", "cpu", "--quiet"]
    assert "--cfg huge" in _error([*base, "--cfg", "huge"], capsys)
    assert "--style-mixing 1.5" in _error([*base, "--style-mixing", "1.5"], capsys)
    assert "--z-dim 0" in _error([*base, "--z-dim", "0"], capsys)
    assert "StyleGAN2" in _error([*base, "--arch", "acgan", "--pl-weight", "2"], capsys)
    assert not (tmp_path / "r").exists()
    run = tmp_path / "small"
    main([*SMALL_TRAIN, "--data", str(phantom), "--kimg", "0.004", "--out", str(run)])
    resume = ["layout", "train", "--resume", str(run), "--kimg", "0.008"]
    assert "trained with --z-dim 8, not 16" in _error([*resume, "--z-dim", "16"], capsys)
    assert "drop --cfg" in _error([*resume, "--cfg", "paper256"], capsys)
