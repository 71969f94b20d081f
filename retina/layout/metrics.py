"""How close generated layouts are to real ones: lesion statistics, optic-disc violations, vessel connectivity
and grade controllability.

``layout_report`` compares two mask sets per grade and per channel; ``layout_score`` folds the report into one
number (lower is better) used to keep the best checkpoint during training and to rank models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.stats import wasserstein_distance
from skimage.morphology import skeletonize

from retina.common.errors import RetinaError
from retina.common.schema import LESION_CHANNELS
from retina.layout.optic_disc import optic_disc_violations

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# Scales that make distances of counts and of area fractions comparable across channels: a distance is divided
# by (mean of the real and fake means + floor); symmetric, so a channel absent from one set scores about 2,
# not a number that grows without bound as the floor shrinks.
COUNT_FLOOR = 1.0
AREA_FLOOR = 1e-3


def instance_counts(masks: np.ndarray) -> np.ndarray:
    """Connected components (8-connected) per layout and channel: int (N, C)."""
    out = np.zeros(masks.shape[:2], dtype=np.int64)
    for n in range(masks.shape[0]):
        for c in range(masks.shape[1]):
            if masks[n, c].any():
                out[n, c] = ndimage.label(masks[n, c], structure=_EIGHT_CONNECTED)[1]
    return out


def area_fractions(masks: np.ndarray) -> np.ndarray:
    """Fraction of the image covered per layout and channel: float (N, C)."""
    return masks.reshape(*masks.shape[:2], -1).mean(axis=-1)


def skeleton_connectivity(vessels: np.ndarray) -> float:
    """Fraction of the vessel skeleton in its largest connected component (1.0 for a single tree, 0 if empty)."""
    skeleton = skeletonize(vessels.astype(bool))
    total = int(skeleton.sum())
    if total == 0:
        return 0.0
    labels, count = ndimage.label(skeleton, structure=_EIGHT_CONNECTED)
    largest = np.bincount(labels.ravel())[1:].max()
    return float(largest) / total


def _relative_distance(fake: np.ndarray, real: np.ndarray, floor: float) -> float:
    if len(fake) == 0 or len(real) == 0:
        return float("nan")
    scale = 0.5 * (float(np.mean(real)) + float(np.mean(fake))) + floor
    return float(wasserstein_distance(fake, real)) / scale


# -- grade controllability -------------------------------------------------------------------------
@dataclass
class GradeClassifierConfig:
    pool: int = 4  # lesion maps pooled to pool x pool cells (where lesions are matters: NPDR 4-2-1 rule)
    steps: int = 300
    lr: float = 0.5  # gradient descent on standardised features
    weight_decay: float = 1e-3  # L2 penalty
    holdout: float = 0.2  # fraction of real layouts kept out of training to report the classifier's accuracy
    seed: int = 0


def grade_features(masks: np.ndarray, channels: Sequence[str], pool: int = 4) -> torch.Tensor:
    """Per-layout features of the lesion channels: log counts, sqrt areas and pooled lesion maps."""
    lesion = [i for i, c in enumerate(channels) if c in LESION_CHANNELS]
    if not lesion:
        lesion = list(range(len(channels)))
    subset = masks[:, lesion]
    counts = np.log1p(instance_counts(subset)).astype(np.float32)
    areas = np.sqrt(area_fractions(subset)).astype(np.float32)
    maps = F.adaptive_avg_pool2d(torch.from_numpy(subset.astype(np.float32)), pool).flatten(1).sqrt()
    return torch.cat([torch.from_numpy(counts), torch.from_numpy(areas), maps], dim=1)


def grade_controllability(
    real: np.ndarray, real_grades: Sequence[int], fake: np.ndarray, fake_grades: Sequence[int],
    channels: Sequence[str], config: GradeClassifierConfig | None = None,
) -> dict[str, float]:
    """Train a logistic-regression grade classifier on real masks; report its held-out accuracy on real masks
    (a reference: how well grades can be read from masks at all) and its agreement with the requested grades
    on fakes."""
    config = config or GradeClassifierConfig()
    real_x = grade_features(real, channels, config.pool)
    fake_x = grade_features(fake, channels, config.pool)
    real_y = torch.as_tensor(list(real_grades), dtype=torch.long)
    fake_y = torch.as_tensor(list(fake_grades), dtype=torch.long)
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(real_y), generator=generator)
    n_test = int(round(len(order) * config.holdout)) if len(order) >= 5 else 0
    test, train = order[:n_test], order[n_test:]
    mean, std = real_x[train].mean(0), real_x[train].std(0, unbiased=False) + 1e-3
    weight = torch.zeros(real_x.shape[1], 5, requires_grad=True)
    bias = torch.zeros(5, requires_grad=True)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return ((x - mean) / std) @ weight + bias

    # Full-batch gradient descent on a convex loss: no optimiser needed (and torch.optim's first use costs
    # seconds of imports, too much for a metric computed during training).
    # enable_grad: the trainer computes this metric inside no_grad
    with torch.enable_grad():
        for _ in range(config.steps):
            loss = F.cross_entropy(logits(real_x[train]), real_y[train]) + config.weight_decay * weight.square().sum()
            grad_weight, grad_bias = torch.autograd.grad(loss, (weight, bias))
            with torch.no_grad():
                weight -= config.lr * grad_weight
                bias -= config.lr * grad_bias
    with torch.no_grad():
        result = {"grade_agreement_fake": float((logits(fake_x).argmax(1) == fake_y).float().mean())}
        result["grade_accuracy_real_train"] = float((logits(real_x[train]).argmax(1) == real_y[train]).float().mean())
        if n_test:
            result["grade_accuracy_real_heldout"] = float(
                (logits(real_x[test]).argmax(1) == real_y[test]).float().mean())
    return result


# -- report ---------------------------------------------------------------------------------------
def _distribution_stats(real: np.ndarray, fake: np.ndarray, floor: float) -> dict[str, float]:
    return {
        "real_mean": float(real.mean()) if len(real) else float("nan"),
        "fake_mean": float(fake.mean()) if len(fake) else float("nan"),
        "distance": _relative_distance(fake, real, floor),
    }


def layout_report(
    real: np.ndarray, real_grades: Sequence[int], fake: np.ndarray, fake_grades: Sequence[int],
    channels: Sequence[str], classifier: bool = True,
) -> dict:
    """Compare layouts ``fake`` with ``real`` (bool (N, C, H, W), same channels and size).

    Distances are 1-D Wasserstein distances between per-layout values, divided by the mean of the real and
    fake means plus a floor (:data:`COUNT_FLOOR`, :data:`AREA_FLOOR`). ``classifier=False`` skips the grade
    classifier (for speed during training).
    """
    channels = tuple(channels)
    if real.ndim != 4 or fake.ndim != 4:
        raise RetinaError("layout_report needs mask stacks shaped (N, C, H, W)")
    if real.shape[1] != len(channels) or fake.shape[1] != len(channels):
        raise RetinaError(f"mask stacks have {real.shape[1]}/{fake.shape[1]} channels, expected {len(channels)}")
    if real.shape[2:] != fake.shape[2:]:
        raise RetinaError(f"real masks are {real.shape[2:]} and fake masks {fake.shape[2:]}; resample to one size")
    if len(real) == 0 or len(fake) == 0:
        raise RetinaError("layout_report needs at least one real and one fake layout")
    real, fake = real.astype(bool), fake.astype(bool)
    real_grades, fake_grades = np.asarray(real_grades, dtype=int), np.asarray(fake_grades, dtype=int)
    real_counts, fake_counts = instance_counts(real), instance_counts(fake)
    real_areas, fake_areas = area_fractions(real), area_fractions(fake)

    per_grade: dict[str, dict] = {}
    groups = [("all", np.ones(len(real), bool), np.ones(len(fake), bool))]
    groups += [(str(g), real_grades == g, fake_grades == g) for g in sorted(set(fake_grades) & set(real_grades))]
    for name, in_real, in_fake in groups:
        per_channel = {}
        for c, channel in enumerate(channels):
            if channel == "fov":
                continue
            per_channel[channel] = {
                "count": _distribution_stats(real_counts[in_real, c], fake_counts[in_fake, c], COUNT_FLOOR),
                "area": _distribution_stats(real_areas[in_real, c], fake_areas[in_fake, c], AREA_FLOOR),
            }
        per_grade[name] = {"n_real": int(in_real.sum()), "n_fake": int(in_fake.sum()), "channels": per_channel}

    report: dict = {"channels": list(channels), "n_real": len(real), "n_fake": len(fake), "grades": per_grade}
    if "od" in channels:
        report["optic_disc"] = {"real": optic_disc_violations(real, channels),
                                "fake": optic_disc_violations(fake, channels)}
    if "vessels" in channels:
        v = channels.index("vessels")
        report["vessel_connectivity"] = {
            "real": float(np.mean([skeleton_connectivity(m) for m in real[:, v]])),
            "fake": float(np.mean([skeleton_connectivity(m) for m in fake[:, v]])),
        }
    if classifier:
        if len(set(real_grades.tolist())) < 2 or (real_grades < 0).any():
            report["grade_control"] = {"skipped": "real layouts need known grades of at least two kinds"}
        else:
            report["grade_control"] = grade_controllability(real, real_grades, fake, fake_grades, channels)
    report["score"] = layout_score(report)
    return report


def layout_score(report: dict) -> float:
    """One number, lower is better::

        score = mean over (grade, channel) of (count distance + area distance) / 2      [per-grade groups only,
                                                                                           or 'all' if none]
              + fake optic-disc violation rate ('any')
              + |vessel connectivity fake - real|
              + max(0, real held-out grade accuracy - fake grade agreement)           [when the classifier ran]

    Identical sets score 0 apart from the classifier term's sampling noise.
    """
    groups = [g for name, g in report["grades"].items() if name != "all"] or [report["grades"]["all"]]
    distances = [
        (stats["count"]["distance"] + stats["area"]["distance"]) / 2
        for group in groups for stats in group["channels"].values()
    ]
    distances = [d for d in distances if np.isfinite(d)]
    score = float(np.mean(distances)) if distances else 0.0
    if "optic_disc" in report:
        score += report["optic_disc"]["fake"]["any_rate"]
    if "vessel_connectivity" in report:
        score += abs(report["vessel_connectivity"]["fake"] - report["vessel_connectivity"]["real"])
    control = report.get("grade_control", {})
    if "grade_agreement_fake" in control:
        reference = control.get("grade_accuracy_real_heldout", control["grade_accuracy_real_train"])
        score += max(0.0, reference - control["grade_agreement_fake"])
    return float(score)
