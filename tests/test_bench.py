"""Downstream benchmarks: metrics on known answers, losses, models, and tiny CLI runs on phantom sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from retina.bench import losses, metrics
from retina.cli import app, main


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    from retina.phantom.dataset import write_phantom

    root = tmp_path_factory.mktemp("bench")
    real = write_phantom(root / "real", n=10, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    synthetic = write_phantom(root / "synthetic", n=6, size=32, grades=[0, 1, 2, 3, 4], seed=1)
    return root, real, synthetic


@pytest.fixture(scope="module")
def segment_run(sets):
    root, real, synthetic = sets
    out = root / "segment"
    result = CliRunner().invoke(app, [
        "bench", "segment", "--real", str(real), "--synthetic", str(synthetic), "--ratios", "0,0.25",
        "--epochs", "1", "--res", "32", "--width", "8", "--channels", "ex,he", "--out", str(out),
        "--save-model", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out


# -- metrics -----------------------------------------------------------------------------------------
def test_perfect_segmentation_scores_one():
    target = np.zeros((2, 2, 8, 8), bool)
    target[0, 0, 2:4, 2:4] = True
    target[1, 1, 5, 5] = True
    meter = metrics.SegmentationMeter(["ex", "he"])
    meter.update(target.astype(np.float32), target)
    result = meter.summary()
    for key in ("precision", "recall", "f1", "auc_pr", "image_f1", "auc_roc"):
        assert result["mean"][key] == pytest.approx(1.0), key


def test_pixel_and_image_f1_known_case():
    target = np.zeros((2, 1, 4, 4), bool)
    target[0, 0, 0, :2] = True  # image 0 has a 2-pixel lesion, image 1 none
    predicted = np.zeros((2, 1, 4, 4), np.float32)
    predicted[0, 0, 0, 0] = 0.9  # 1 TP, 1 FN in image 0
    predicted[1, 0, 3, 3] = 0.8  # 1 FP in image 1 -> image-level: TP (image 0) and FP (image 1)
    meter = metrics.SegmentationMeter(["ex"])
    meter.update(predicted, target)
    row = meter.per_channel()["ex"]
    assert row["precision"] == pytest.approx(0.5) and row["recall"] == pytest.approx(0.5)
    assert row["f1"] == pytest.approx(0.5)
    assert row["image_f1"] == pytest.approx(2 / 3)  # 2*1 / (2*1 + 1 FP + 0 FN)


def test_average_precision_and_roc_known_values():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    targets = np.array([1, 0, 1, 0])
    # AP = 1/2 * 1 + 1/2 * 2/3
    assert metrics.average_precision(scores, targets) == pytest.approx(0.5 + 1 / 3)
    assert metrics.roc_auc(scores, targets) == pytest.approx(0.75)
    assert math.isnan(metrics.average_precision(scores, np.zeros(4)))


def test_quadratic_kappa_against_hand_value():
    matrix = np.array([[2, 1], [0, 1]])
    # weights [[0,1],[1,0]]; observed weighted sum 1; expected = outer([3,1],[2,2])/4 -> off-diagonal 1.5 + 0.5
    assert metrics.quadratic_weighted_kappa(matrix) == pytest.approx(0.5)
    result = metrics.grading_metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), classes=3)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["tpr"] == {"0": 1.0, "1": 1.0, "2": 0.5}
    assert metrics.grading_metrics(np.arange(5), np.arange(5))["kappa"] == pytest.approx(1.0)


# -- losses ------------------------------------------------------------------------------------------
def test_dual_dice_loss_known_case():
    probabilities = torch.zeros(1, 1, 2, 2)
    probabilities[0, 0, 0, 0] = 1.0
    probabilities[0, 0, 1, 1] = 0.5
    targets = torch.zeros(1, 1, 2, 2)
    targets[0, 0, 0, 0] = 1.0
    pixel = 1 - 2 * 1 / (1 + 0.25 + 1)  # Eq. 3
    assert losses.pixel_dice_loss(probabilities, targets).item() == pytest.approx(pixel, abs=1e-5)
    assert losses.image_dice_loss(probabilities, targets).item() == pytest.approx(0.0, abs=1e-5)
    assert losses.dual_dice_loss(probabilities, targets).item() == pytest.approx(0.8 * pixel, abs=1e-5)


def test_loss_schedule_starts_with_pixel_dice():
    loss = losses.SegmentationLoss("dual")
    loss.start_epoch(0, 4)
    assert not loss.dual_active
    loss.start_epoch(2, 4)
    assert loss.dual_active


# -- models ------------------------------------------------------------------------------------------
def test_unet_shape_and_bad_size():
    from retina.bench.unet import UNet, UNetConfig

    model = UNet(UNetConfig(out_channels=3, width=8))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.zeros(1, 3, 30, 30))


def _overfit(model, loss_fn, image, target, lr: float, steps: int) -> list[float]:
    """Adam on the trainable parameters, one batch over and over; the loss of each step."""
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    for _ in range(steps):
        loss = loss_fn(model(image), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(loss.item())
    return history


def test_unet_overfits_one_batch_with_dice_loss():
    from retina.bench.unet import UNet, UNetConfig

    model = UNet(UNetConfig(out_channels=1, width=8))
    image = torch.randn(2, 3, 16, 16)
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:9, 5:11] = 1
    history = _overfit(model, losses.SegmentationLoss("dice"), image, target, lr=1e-2, steps=15)
    assert history[-1] < 0.6 * history[0]


@pytest.mark.parametrize("cut", [4])
def test_lesionnet_shape_and_minimum_size(cut):
    from retina.bench.lesionnet import MIN_INPUT, RANDOM_INIT, LesionNet, LesionNetConfig
    from retina.common.errors import RetinaError

    model = LesionNet(LesionNetConfig(out_channels=2, cut=cut)).eval()
    assert model.backbone_source == RANDOM_INIT
    with torch.no_grad():
        out = model.probabilities(torch.zeros(1, 3, MIN_INPUT + 5, MIN_INPUT + 5))
    assert out.shape == (1, 2, MIN_INPUT + 5, MIN_INPUT + 5) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(RetinaError, match="at least 75"):
        model(torch.zeros(1, 3, 64, 64))


def test_lesionnet_concatenates_skips_and_stops_at_the_cut():
    """Copy-and-merge: each merge block's input is [1x1-reduced, bilinearly enlarged coarser map, the
    contracting path's own feature map] side by side (channels add up), never a sum; Lesion-Net-2s has
    no stage at full resolution."""
    from retina.bench.lesionnet import STAGE_CHANNELS, LesionNet, LesionNetConfig

    torch.manual_seed(0)
    model = LesionNet(LesionNetConfig(out_channels=3, cut=2)).eval()
    assert model.strides == [32, 16, 8, 4, 2]
    for stride, reduce, merge in zip(model.strides[1:], model.reduce, model.merge, strict=True):
        assert reduce.kernel_size == (1, 1) and reduce.out_channels == STAGE_CHANNELS[stride]
        assert merge[0].in_channels == 2 * STAGE_CHANNELS[stride]
    captured, features = [], {}
    hooks = [block.register_forward_hook(lambda m, args, out: captured.append(args[0])) for block in model.merge]
    for (stride, stage) in zip((2, 4, 8, 16, 32), model.stages, strict=True):
        hooks.append(stage.register_forward_hook(lambda m, a, out, s=stride: features.__setitem__(s, out)))
    image = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        logits = model(image)
    for hook in hooks:
        hook.remove()
    assert logits.shape == (1, 3, 96, 96)
    assert len(captured) == 4
    for merged, stride in zip(captured, (16, 8, 4, 2), strict=True):
        skip = features[stride]
        assert merged.shape[1] == 2 * skip.shape[1] and merged.shape[-2:] == skip.shape[-2:]
        assert torch.equal(merged[:, skip.shape[1]:], skip)  # the copy, unchanged (not added to)
    assert max(x.shape[-1] for x in captured) < 96 / 2 + 1  # the finest merge is the 2s one: no 1s stage
    assert [x.shape[-1] for x in captured] == sorted(x.shape[-1] for x in captured)
    # The cut: Lesion-Net-32s has no merge at all, -16s one.
    assert len(LesionNet(LesionNetConfig(cut=32)).merge) == 0 and len(LesionNet(LesionNetConfig(cut=16)).merge) == 1


def test_lesionnet_fcn_adds_score_maps():
    from retina.bench.lesionnet import LesionNetConfig, LesionNetFCN

    model = LesionNetFCN(LesionNetConfig(out_channels=2, cut=8)).eval()
    assert [head.out_channels for head in model.scores] == [2, 2, 2]  # one score map per lesion per stage
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 80, 80)).shape == (1, 2, 80, 80)


def test_dual_dice_matches_the_papers_formula():
    """Eqs. 2-4 written out in plain torch, on random maps of a batch of three."""
    torch.manual_seed(1)
    p = torch.rand(3, 2, 8, 8)
    t = (torch.rand(3, 2, 8, 8) > 0.8).float()
    t[1, 1] = 0  # one lesion absent from one image
    seg = 1 - 2 * (p * t).sum() / ((p**2).sum() + (t**2).sum())
    big_p, big_t = p.amax(dim=(2, 3)), t.amax(dim=(2, 3))
    clf = 1 - 2 * (big_p * big_t).sum() / ((big_p**2).sum() + (big_t**2).sum())
    assert losses.dual_dice_loss(p, t).item() == pytest.approx((0.8 * seg + 0.2 * clf).item(), abs=1e-5)
    assert losses.dual_dice_loss(p, t, weight=0.3).item() == pytest.approx((0.3 * seg + 0.7 * clf).item(),
                                                                          abs=1e-5)


def test_lesionnet_dual_dice_loss_falls_on_a_tiny_overfit():
    from retina.bench.lesionnet import LesionNet, LesionNetConfig

    torch.manual_seed(0)
    model = LesionNet(LesionNetConfig(out_channels=1, cut=8))
    model.stages.requires_grad_(False)  # the expansive path learns; backward through Inception-v3 is slow on CPU
    image = torch.randn(2, 3, 80, 80)
    target = torch.zeros(2, 1, 80, 80)
    target[0, :, 20:44, 30:60] = 1
    target[1, :, 50:70, 10:30] = 1
    loss_fn = losses.SegmentationLoss("dual")
    loss_fn.dual_active = True
    history = _overfit(model, loss_fn, image, target, lr=3e-3, steps=8)
    assert history[-1] < 0.7 * history[0]


# -- benchmarks --------------------------------------------------------------------------------------
def test_bench_segment_writes_table_json_plot(segment_run):
    result = json.loads((segment_run / "results.json").read_text())
    assert [row["ratio"] for row in result["rows"]] == [0.0, 0.25]
    assert [row["synthetic_count"] for row in result["rows"]] == [0, 3]  # 0.25/0.75 * 8 real
    assert len(result["split"]["test"]) == 2 and not set(result["split"]["test"]) & set(result["split"]["train"])
    assert set(result["rows"][0]["metrics"]) == {"ex", "he", "mean"}
    assert "random init" in result["model_description"]
    assert (segment_run / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 25% | 3 |" in (segment_run / "table.md").read_text()


def test_bench_segment_bad_ratio(sets, tmp_path, capsys):
    _, real, synthetic = sets
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "segment", "--real", str(real), "--ratios", "0,1", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "must be in [0, 1)" in capsys.readouterr().err


def test_bench_grade_tiny(sets):
    root, real, synthetic = sets
    out = root / "grade"
    result = CliRunner().invoke(app, [
        "bench", "grade", "--real", str(real), "--synthetic", str(synthetic), "--width", "tiny", "--res", "32",
        "--epochs", "1", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert set(document["results"]) == {"Tr-Real / Te-Fake", "Tr-Real / Te-Real", "Tr-Real & Fake / Te-Real"}
    assert document["results"]["Tr-Real / Te-Fake"]["count"] == 6
    for row in document["results"].values():  # the scores are those of the confusion matrix they came with
        confusion = np.array(row["confusion"])
        assert confusion.sum() == row["count"] and row["accuracy"] == pytest.approx(np.trace(confusion) / row["count"])
    assert (out / "tpr.png").is_file()


def test_bench_vessels_tiny(sets):
    root, real, synthetic = sets
    out = root / "vessels"
    result = CliRunner().invoke(app, [
        "bench", "vessels", "--real", str(real), "--synthetic", str(synthetic), "--res", "32", "--width", "8",
        "--pretrain-epochs", "1", "--finetune-epochs", "1", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert document["evaluated_inside_fov"] is True
    for setting in ("with", "without"):
        assert 0 <= document["results"][setting]["acc"] <= 1
        assert 0 <= document["results"][setting]["auc"] <= 1


def test_annotate_resumes_after_interruption(segment_run, sets, tmp_path, monkeypatch):
    from retina.common.canonical import CanonicalDataset
    from retina.data import annotate as annotate_module

    _, real, _ = sets
    out = tmp_path / "weak"
    original = annotate_module.predict_masks
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(annotate_module, "predict_masks", failing)
    checkpoint = segment_run / "segmenter_ratio25.safetensors"
    with pytest.raises(SystemExit):
        main(["data", "annotate", "--segmenter", str(checkpoint), "--images", str(real), "--out", str(out),
              "--device", "cpu"])
    partial = out.with_name("weak.partial")
    assert len(CanonicalDataset(partial)) == 3 and not out.exists()
    calls.clear()
    monkeypatch.setattr(annotate_module, "predict_masks", original)
    result = CliRunner().invoke(app, ["data", "annotate", "--segmenter", str(checkpoint), "--images", str(real),
                                      "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    done = CanonicalDataset(out)
    assert len(done) == 10 and set(done.channels) == {"ex", "he"}
    assert done.info["provenance"]["weak_labels"] is True
    assert done.sample("phantom_00003").grade == CanonicalDataset(real).sample("phantom_00003").grade
