"""Benchmark evaluation on predictors whose scores are known in advance: a perfect one scores 1, a constant one
the value its class balance fixes. (The CLI runs in test_bench.py train from random weights on a few images, so
their scores alone say little.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from retina.bench.grade import evaluate_grader
from retina.bench.segment import evaluate_segmenter

GRADES = [0, 0, 0, 1, 2, 2, 3, 4]


class GradeImages(torch.utils.data.Dataset):
    """Image i carries its grade in pixel (0, 0, 0), so a predictor can read it back."""

    def __len__(self) -> int:
        return len(GRADES)

    def __getitem__(self, i: int) -> dict:
        image = torch.zeros(3, 4, 4)
        image[0, 0, 0] = GRADES[i]
        return {"image": image, "grade": GRADES[i]}


class ReadGrade(nn.Module):
    def __init__(self, constant: int | None = None):
        super().__init__()
        self.constant = constant

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        grades = image[:, 0, 0, 0].long() if self.constant is None else torch.full((len(image),), self.constant)
        return nn.functional.one_hot(grades, 5).float()


def test_grader_evaluation_perfect_and_constant():
    perfect = evaluate_grader(ReadGrade(), GradeImages(), torch.device("cpu"), batch_size=3)
    assert perfect["accuracy"] == 1.0 and perfect["kappa"] == pytest.approx(1.0) and perfect["count"] == 8
    assert perfect["tpr"] == {str(g): 1.0 for g in range(5)}
    constant = evaluate_grader(ReadGrade(0), GradeImages(), torch.device("cpu"), batch_size=3)
    assert constant["accuracy"] == pytest.approx(3 / 8)  # the share of grade 0
    assert constant["kappa"] == pytest.approx(0.0)  # a constant rater agrees by chance only
    assert constant["tpr"] == {"0": 1.0, "1": 0.0, "2": 0.0, "3": 0.0, "4": 0.0}


class VesselImages(torch.utils.data.Dataset):
    """8x8 images whose red channel is the vessel map; masks: vessels, then a field of view (a 6x6 square)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.vessels = torch.from_numpy(rng.random((4, 1, 8, 8)) < 0.3).float()
        self.fov = torch.zeros(1, 8, 8)
        self.fov[:, 1:7, 1:7] = 1

    def __len__(self) -> int:
        return len(self.vessels)

    def __getitem__(self, i: int) -> dict:
        image = torch.cat([self.vessels[i], torch.zeros(2, 8, 8)])
        return {"image": image, "masks": torch.cat([self.vessels[i], self.fov])}


class Logits(nn.Module):
    def __init__(self, constant: float | None = None):
        super().__init__()
        self.constant = constant

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.constant is not None:
            return torch.full_like(image[:, :1], self.constant)
        return (image[:, :1] * 2 - 1) * 10  # vessel -> sigmoid ~1, background -> ~0


def test_segmenter_evaluation_perfect_and_constant_inside_the_fov():
    data = VesselImages()
    inside = data.fov[0] > 0.5
    truth = data.vessels[:, 0][:, inside]
    perfect = evaluate_segmenter(Logits(), data, ("vessels",), torch.device("cpu"), fov_index=1)["vessels"]
    for key in ("accuracy", "sensitivity", "auc_roc", "f1", "auc_pr"):
        assert perfect[key] == pytest.approx(1.0), key
    background = evaluate_segmenter(Logits(-10.0), data, ("vessels",), torch.device("cpu"), fov_index=1)["vessels"]
    # all background: accuracy is the share of background pixels inside the FOV (outside it does not count)
    assert background["accuracy"] == pytest.approx(1 - truth.mean().item())
    assert background["accuracy"] != pytest.approx(1 - data.vessels.mean().item())
    assert background["sensitivity"] == 0.0
    assert background["auc_roc"] == pytest.approx(0.5)  # every score tied


def test_dual_dice_against_numpy_reference():
    """Lesion-Net (Wei et al. 2020) eqs. 2-4 in numpy: pixel Dice over every pixel of the batch, image Dice on the
    global-max-pooled maps and labels, 0.8 / 0.2 mix."""
    from retina.bench.losses import dual_dice_loss, image_dice_loss, pixel_dice_loss

    rng = np.random.default_rng(0)
    p = rng.random((3, 2, 6, 6)).astype(np.float32) * 0.6
    t = (rng.random((3, 2, 6, 6)) < 0.1).astype(np.float32)
    t[1, 0] = 0  # an image without this lesion: its image label is 0

    def dice(a, b):
        return 1 - 2 * (a * b).sum() / ((a**2).sum() + (b**2).sum())

    pixel = dice(p, t)
    image = dice(p.max(axis=(2, 3)), t.max(axis=(2, 3)))
    assert image > 0.05  # the image term is not trivially zero here
    probabilities, targets = torch.from_numpy(p), torch.from_numpy(t)
    assert pixel_dice_loss(probabilities, targets).item() == pytest.approx(pixel, abs=1e-5)
    assert image_dice_loss(probabilities, targets).item() == pytest.approx(image, abs=1e-5)
    assert dual_dice_loss(probabilities, targets).item() == pytest.approx(0.8 * pixel + 0.2 * image, abs=1e-5)
