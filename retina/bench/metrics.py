"""Downstream-task metrics: lesion segmentation (pixel and image level), vessel segmentation, DR grading.

Everything is numpy on flattened arrays so that metrics are exact and independent of the model's device.
Scores are probabilities in [0, 1]; targets are {0, 1}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

THRESHOLD = 0.5  # Son et al. and Lesion-Net binarise the sigmoid output at 0.5


@dataclass
class BinaryCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
        predicted, target = predicted.astype(bool).ravel(), target.astype(bool).ravel()
        self.tp += int(np.count_nonzero(predicted & target))
        self.fp += int(np.count_nonzero(predicted & ~target))
        self.fn += int(np.count_nonzero(~predicted & target))
        self.tn += int(np.count_nonzero(~predicted & ~target))

    @property
    def precision(self) -> float:
        # No positive prediction and no positive target is a perfect (empty) answer.
        return _ratio(self.tp, self.tp + self.fp, empty=1.0 if self.fn == 0 else 0.0)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn, empty=1.0 if self.fp == 0 else 0.0)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, empty=1.0)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn, empty=1.0)

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return float(numerator / denominator) if denominator else float(empty)


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (sum over recall steps of precision),
    the step-wise estimator sklearn's ``average_precision_score`` uses. Ties are grouped at one threshold.
    Returns NaN when there is no positive target (AUC-PR is undefined then)."""
    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).astype(bool).ravel()
    positives = int(targets.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    true_positives = np.cumsum(targets)
    predicted = np.arange(1, len(scores) + 1)
    # Keep the last index of each run of tied scores: one operating point per distinct threshold.
    last_of_tie = np.r_[np.diff(scores) != 0, True]
    tp, count = true_positives[last_of_tie], predicted[last_of_tie]
    precision, recall = tp / count, tp / positives
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def roc_auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (average ranks for ties).
    NaN when only one class is present."""
    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).astype(bool).ravel()
    positives, negatives = int(targets.sum()), int((~targets).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average rank within each run of ties.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    rank_sum = ranks[targets].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


class SegmentationMeter:
    """Accumulates per-channel pixel counts, image-level counts (global max pooling, Lesion-Net Sec. III-A)
    and scores for AUC-PR over batches of ``(B, C, H, W)`` probabilities and targets.

    AUC-PR keeps every pixel score; ``max_pixels`` subsamples with a fixed seed for large test sets.
    """

    def __init__(self, channels: list[str] | tuple[str, ...], max_pixels: int = 4_000_000, seed: int = 0):
        self.channels = tuple(channels)
        self.pixel = [BinaryCounts() for _ in self.channels]
        self.image = [BinaryCounts() for _ in self.channels]
        self._scores: list[list[np.ndarray]] = [[] for _ in self.channels]
        self._targets: list[list[np.ndarray]] = [[] for _ in self.channels]
        self._kept = 0
        self.max_pixels = max_pixels
        self._rng = np.random.default_rng(seed)

    def update(self, probabilities: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None) -> None:
        probabilities, targets = np.asarray(probabilities), np.asarray(targets) > 0.5
        if probabilities.shape != targets.shape or probabilities.ndim != 4:
            raise ValueError(f"expected (B, C, H, W) probabilities and targets, got {probabilities.shape} "
                             f"and {targets.shape}")
        for c in range(len(self.channels)):
            p, t = probabilities[:, c], targets[:, c]
            if valid is not None:
                p, t = p[valid], t[valid]
            self.pixel[c].update(p >= THRESHOLD, t)
            image_p = probabilities[:, c].reshape(len(probabilities), -1).max(axis=1)
            image_t = targets[:, c].reshape(len(targets), -1).max(axis=1)
            self.image[c].update(image_p >= THRESHOLD, image_t)
            flat_p, flat_t = p.ravel(), t.ravel()
            budget = self.max_pixels // max(1, len(self.channels))
            if flat_p.size > budget:
                keep = self._rng.choice(flat_p.size, budget, replace=False)
                flat_p, flat_t = flat_p[keep], flat_t[keep]
            self._scores[c].append(flat_p.astype(np.float32))
            self._targets[c].append(flat_t)

    def per_channel(self) -> dict[str, dict[str, float]]:
        result = {}
        for c, name in enumerate(self.channels):
            scores = np.concatenate(self._scores[c]) if self._scores[c] else np.zeros(0)
            targets = np.concatenate(self._targets[c]) if self._targets[c] else np.zeros(0, bool)
            result[name] = {
                "precision": self.pixel[c].precision,
                "recall": self.pixel[c].recall,
                "f1": self.pixel[c].f1,
                "auc_pr": average_precision(scores, targets),
                "image_f1": self.image[c].f1,
                "auc_roc": roc_auc(scores, targets),
                "sensitivity": self.pixel[c].recall,
                "accuracy": self.pixel[c].accuracy,
            }
        return result

    def summary(self) -> dict[str, dict[str, float]]:
        """Per channel plus ``mean`` (the unweighted mean over channels, NaNs skipped)."""
        table = self.per_channel()
        keys = next(iter(table.values())).keys() if table else []
        mean = {}
        for key in keys:
            values = [row[key] for row in table.values() if not np.isnan(row[key])]
            mean[key] = float(np.mean(values)) if values else float("nan")
        return {**table, "mean": mean}


# -- grading ----------------------------------------------------------------------------------------
def confusion_matrix(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, int), np.asarray(predicted, int)), 1)
    return matrix


def quadratic_weighted_kappa(matrix: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights (the Kaggle DR Detection metric) from a confusion matrix
    (rows: truth, columns: prediction)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    classes, total = matrix.shape[0], matrix.sum()
    if total == 0:
        return float("nan")
    index = np.arange(classes)
    weights = (index[:, None] - index[None, :]) ** 2 / max(1, (classes - 1) ** 2)
    expected = np.outer(matrix.sum(axis=1), matrix.sum(axis=0)) / total
    denominator = (weights * expected).sum()
    if denominator == 0:
        return 1.0 if (weights * matrix).sum() == 0 else 0.0
    return float(1.0 - (weights * matrix).sum() / denominator)


def grading_metrics(true: np.ndarray, predicted: np.ndarray, classes: int = 5) -> dict:
    """Accuracy, quadratic weighted kappa and per-class true positive rate (DR-GAN Tables III and V)."""
    matrix = confusion_matrix(true, predicted, classes)
    support = matrix.sum(axis=1)
    tpr = {str(k): (float(matrix[k, k] / support[k]) if support[k] else float("nan")) for k in range(classes)}
    return {
        "accuracy": float(np.trace(matrix) / matrix.sum()) if matrix.sum() else float("nan"),
        "kappa": quadratic_weighted_kappa(matrix),
        "tpr": tpr,
        "confusion": matrix.tolist(),
        "count": int(matrix.sum()),
    }
