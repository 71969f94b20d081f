"""`retina render train` measured on held-out data (issue 11): best by FD-EffNetLite0 on the val rows, a grader with
early stopping that is cached and reused, a perceptual loss that is never silently off, and refusals (--stage fine
without --init, --init with conflicting options)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from retina.cli import main
from retina.common.checkpoint import Checkpoint
from retina.render.grading import GradingSpace, build_grader, quadratic_kappa, resolve_grader_arch, train_grader

BASE = ["--res", "32", "--width", "8", "--batch", "4", "--device", "cpu", "--grader", "tiny", "--grader-steps", "2",
        "--stage", "coarse"]
TINY = [*BASE, "--no-perceptual"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def split_set(tmp_path_factory):
    """16 phantoms at 32 px: 9 train, 5 val, 2 test rows whose photographs are deleted (reading one would fail)."""
    from retina.phantom.dataset import write_phantom

    root = write_phantom(tmp_path_factory.mktemp("split") / "ph", n=16, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    train_rows = [r for r in rows[1:] if r[2] == "train"]
    for row in train_rows[:2]:
        row[2] = "test"
        (root / "images" / f"{row[0]}.png").unlink()
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


def _records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_best_is_the_lowest_val_fd_and_test_rows_are_never_read(split_set, tmp_path, capsys):
    run = tmp_path / "run"
    main(["render", "train", "--data", str(split_set), "--out", str(run), "--steps", "2", "--every", "1", *TINY])
    captured = capsys.readouterr()
    assert "lowest FD-EffNetLite0 of renders of 5 split=val masks" in captured.out
    curve = [r for r in _records(run) if "val_fd_effnetlite0" in r]
    assert [r["step"] for r in curve] == [1, 2]
    assert all(r["val_fd_effnetlite0"] >= 0 and r["val_swd"] > 0 and r["val_l1"] > 0 for r in curve)
    assert (captured.out + captured.err).count("val FD-EffNetLite0") == 2 + 1  # the console shows the curve too
    best = min(curve, key=lambda r: r["val_fd_effnetlite0"])
    state = Checkpoint(run / "best.safetensors").state
    assert state["step"] == best["step"] and state["best_step"] == best["step"]
    assert state["selection"] == "FD-EffNetLite0" and state["best"] == pytest.approx(best["val_fd_effnetlite0"],
                                                                                        abs=1e-5)


def test_without_val_rows_best_is_the_latest_snapshot_and_says_so(phantom, tmp_path, capsys):
    run = tmp_path / "run"
    main(["render", "train", "--data", str(phantom), "--out", str(run), "--steps", "2", "--every", "1", *TINY])
    out = capsys.readouterr().out
    assert "no split=val rows" in out and "best = latest snapshot" in out
    assert Checkpoint(run / "best.safetensors").state["step"] == 2
    assert not any("val_l1" in r for r in _records(run))  # never training L1 in its place


def test_grader_stops_early_and_keeps_its_best_weights():
    torch.manual_seed(0)
    images = torch.rand(20, 3, 32, 32) * 2 - 1
    batches = [{"image": images[i:i + 10], "grade": torch.randint(0, 5, (10,))} for i in (0, 10)]
    grader = build_grader("tiny")
    report = train_grader(grader, batches[:1], batches[1:], steps=500, eval_every=2, patience=3, lr=1e-3,
                          device=torch.device("cpu"))
    assert report["stopped"] == "early" and report["steps"] < 500
    # it stopped `patience` checks after the best one, and kept that one's weights
    assert report["steps"] == report["best_step"] + 3 * 2
    assert 0 <= report["val_accuracy"] <= 1 and report["val_images"] == 10
    best = max(report["curve"], key=lambda c: c["accuracy"])
    assert report["val_accuracy"] == best["accuracy"]
    # a perfect val accuracy cannot improve: it stops there
    one_grade = [{"image": images[:10], "grade": torch.full((10,), 3)}]
    report = train_grader(build_grader("tiny"), one_grade, one_grade, steps=500, eval_every=2, patience=3, lr=1e-2,
                          device=torch.device("cpu"))
    assert report["stopped"] == "perfect" and report["val_accuracy"] == 1.0 and report["steps"] < 500


def test_quadratic_kappa_and_gaussian_separation():
    assert quadratic_kappa([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) == pytest.approx(1.0)
    assert quadratic_kappa([0, 0, 4, 4], [4, 4, 0, 0]) == pytest.approx(-1.0)
    grades = torch.arange(5).repeat_interleave(20)
    separated, overlapping = GradingSpace(16, rank=4), GradingSpace(16, rank=4)
    separated.fit(torch.randn(100, 16) * 0.1 + torch.eye(5, 16)[grades] * 5, grades)
    overlapping.fit(torch.randn(100, 16), grades)
    assert separated.separation()["ncm_accuracy"] > 0.95
    assert overlapping.separation()["ncm_accuracy"] < 0.6 and overlapping.separation()["chance"] == 0.2


def test_grader_backbone_choice(tmp_path):
    assert resolve_grader_arch("auto", tmp_path)[0] == "effnet-lite0"  # no ResNet-50 weights anywhere here
    assert build_grader("effnet-lite0").eval().features(torch.zeros(1, 3, 32, 32)).shape == (1, 1280)


def test_grader_is_cached_reused_and_named_in_every_output(split_set, tmp_path, capsys, cli_error, monkeypatch):
    monkeypatch.setenv("RETINA_CACHE", str(tmp_path / "cache"))
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    main(["render", "train", "--data", str(split_set), "--out", str(first), "--steps", "1", *TINY])
    out = capsys.readouterr().out
    assert "grading network: tiny from random weights" in out and "RANDOM weights" in out
    info = Checkpoint(first).config["grader"]
    assert info["source"] == "trained" and info["weights"] == "random weights"
    assert {"val_accuracy", "val_kappa", "separation", "stopped", "images_fingerprint"} <= set(info)
    assert info["held_out"] == "5 graded split=val rows"
    assert any(r.get("event") == "grader" and r["weights"] == "random weights" for r in _records(first))
    cached = list((tmp_path / "cache" / "graders").glob("tiny-*.safetensors"))
    assert len(cached) == 1 and Checkpoint(cached[0]).config["kind"] == "grader"

    main(["render", "train", "--data", str(split_set), "--out", str(second), "--steps", "1", *TINY])
    assert Checkpoint(second).config["grader"]["source"] == "cache"
    main(["render", "train", "--data", str(split_set), "--out", str(third), "--steps", "1", *TINY,
          "--grader-checkpoint", str(cached[0])])
    assert Checkpoint(third).config["grader"]["source"] == "--grader-checkpoint"
    # the same grader gives the same grading space, and the GAN's initial weights do not depend on where it came from
    a, b, c = Checkpoint(first), Checkpoint(second), Checkpoint(third)
    assert torch.equal(a.tensors["space.mean"], b.tensors["space.mean"])
    assert torch.equal(a.tensors["space.mean"], c.tensors["space.mean"])
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    message = cli_error(["render", "train", "--data", str(split_set), "--out", str(tmp_path / "d"), *TINY,
                      "--grader", "effnet-lite0", "--grader-checkpoint", str(cached[0])])
    assert "conflicts with --grader-checkpoint" in message


def test_perceptual_loss_changes_the_generator_step(phantom, tmp_path, capsys, cli_error):
    runs = {}
    for net in ("effnet-lite0", "none"):
        runs[net] = tmp_path / net
        main(["render", "train", "--data", str(phantom), "--out", str(runs[net]), "--steps", "1", *BASE,
              "--perceptual", net])
    with_loss, without = Checkpoint(runs["effnet-lite0"]), Checkpoint(runs["none"])
    assert with_loss.config["perceptual"] == "effnet-lite0" and without.config["perceptual"] == "none"
    assert any("loss_perc" in r for r in _records(runs["effnet-lite0"]))
    assert not any("loss_perc" in r for r in _records(runs["none"]))
    # same seed, same batch: D's step (before the generator's) is identical, G's differs only by the perceptual term
    d_keys = [k for k in with_loss.tensors if k.startswith("d.")]
    g_keys = [k for k in with_loss.tensors if k.startswith("g.") and with_loss.tensors[k].is_floating_point()]
    assert all(torch.equal(with_loss.tensors[k], without.tensors[k]) for k in d_keys)
    assert any(not torch.equal(with_loss.tensors[k], without.tensors[k]) for k in g_keys)
    # the default without VGG-19 weights is EfficientNet-Lite0, said on the console; never off
    auto = tmp_path / "auto"
    capsys.readouterr()
    main(["render", "train", "--data", str(phantom), "--out", str(auto), "--steps", "1", *BASE])
    assert "perceptual loss: effnet-lite0 (no VGG-19 weights" in capsys.readouterr().out
    assert Checkpoint(auto).config["perceptual"] == "effnet-lite0"
    assert "weights 'vgg19' not found" in cli_error(["render", "train", "--data", str(phantom), "--out",
                                                   str(tmp_path / "v"), *BASE, "--perceptual", "vgg19"])
    assert "contradicts" in cli_error(["render", "train", "--data", str(phantom), "--out", str(tmp_path / "w"), *TINY,
                                    "--perceptual", "vgg19"])


def test_fine_stage_needs_init_or_from_scratch_and_init_conflicts_are_refused(phantom, tmp_path, cli_error):
    base = ["render", "train", "--data", str(phantom), "--res", "32", "--batch", "4", "--device", "cpu",
            "--grader", "tiny", "--grader-steps", "2", "--no-perceptual", "--steps", "1"]
    message = cli_error([*base, "--out", str(tmp_path / "f"), "--width", "8"])
    assert "--stage fine starts from a coarse run" in message and "--from-scratch" in message
    assert not (tmp_path / "f").exists()
    coarse = tmp_path / "coarse"
    main([*base, "--out", str(coarse), "--width", "8", "--stage", "coarse"])
    message = cli_error([*base, "--out", str(tmp_path / "g"), "--init", str(coarse), "--width", "16",
                      "--upsample", "transpose"])
    assert "--width (16 here, 8 in the coarse run)" in message and "--upsample (transpose here, resize" in message
    assert not (tmp_path / "g").exists()
    assert "contradict" in cli_error([*base, "--out", str(tmp_path / "h"), "--init", str(coarse), "--from-scratch"])
    main([*base, "--out", str(tmp_path / "fine"), "--init", str(coarse), "--width", "8"])  # agreeing: fine
    assert Checkpoint(tmp_path / "fine").config["width"] == 8
