"""Downstream-task metrics: lesion segmentation (pixel and image level), vessel segmentation, DR grading.

Scores and targets are numpy arrays, so metrics are independent of the model's device. The arithmetic is the
well-kept libraries': scikit-learn (average precision, ROC AUC, confusion matrix, quadratic kappa) and
torchmetrics (confusion counts); this module adds the benchmarks' conventions for empty cases.
Scores are probabilities in [0, 1]; targets are {0, 1}.
"""

from __future__ import annotations

import numpy as np
import torch

THRESHOLD = 0.5  # Son et al. and Lesion-Net binarise the sigmoid output at 0.5


class BinaryCounts:
    """Confusion counts accumulated over batches (torchmetrics' ``BinaryStatScores``), with the conventions of
    segmentation benchmarks for empty cases: no positive prediction and no positive target scores 1."""

    def __init__(self) -> None:
        from torchmetrics.classification import BinaryStatScores

        self._stats = BinaryStatScores(threshold=THRESHOLD)

    def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
        predicted, target = np.asarray(predicted).astype(bool).ravel(), np.asarray(target).astype(bool).ravel()
        if predicted.size:
            self._stats.update(torch.from_numpy(predicted).float(), torch.from_numpy(target).long())

    def _counts(self) -> tuple[int, int, int, int]:
        tp, fp, tn, fn = (int(v) for v in (self._stats.tp, self._stats.fp, self._stats.tn, self._stats.fn))
        return tp, fp, fn, tn

    @property
    def tp(self) -> int:
        return self._counts()[0]

    @property
    def fp(self) -> int:
        return self._counts()[1]

    @property
    def fn(self) -> int:
        return self._counts()[2]

    @property
    def tn(self) -> int:
        return self._counts()[3]

    @property
    def precision(self) -> float:
        tp, fp, fn, _ = self._counts()
        # No positive prediction and no positive target is a perfect (empty) answer.
        return _ratio(tp, tp + fp, empty=1.0 if fn == 0 else 0.0)

    @property
    def recall(self) -> float:
        tp, fp, fn, _ = self._counts()
        return _ratio(tp, tp + fn, empty=1.0 if fp == 0 else 0.0)

    @property
    def f1(self) -> float:
        tp, fp, fn, _ = self._counts()
        return _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)

    @property
    def accuracy(self) -> float:
        tp, fp, fn, tn = self._counts()
        return _ratio(tp + tn, tp + tn + fp + fn, empty=1.0)

    def as_dict(self) -> dict[str, float]:
        tp, fp, fn, tn = self._counts()
        return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": self.precision, "recall": self.recall,
                "f1": self.f1}


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return float(numerator / denominator) if denominator else float(empty)


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn's ``average_precision_score``).
    NaN when there is no positive target (AUC-PR is undefined then)."""
    from sklearn.metrics import average_precision_score

    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).astype(bool).ravel()
    if not targets.any():
        return float("nan")
    return float(average_precision_score(targets, scores))


def roc_auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).astype(bool).ravel()
    if targets.all() or not targets.any():
        return float("nan")
    return float(roc_auc_score(targets, scores))


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
    """Rows: truth, columns: prediction, over the labels 0 .. classes - 1 (scikit-learn)."""
    from sklearn.metrics import confusion_matrix as sklearn_confusion

    return sklearn_confusion(np.asarray(true, int), np.asarray(predicted, int), labels=list(range(classes)))


def quadratic_weighted_kappa(matrix: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights (the Kaggle DR Detection metric) from a confusion matrix
    (rows: truth, columns: prediction), by scikit-learn's ``cohen_kappa_score`` on the pairs the matrix counts."""
    from sklearn.metrics import cohen_kappa_score

    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.sum() == 0:
        return float("nan")
    rows, columns = np.indices(matrix.shape)
    true, predicted = np.repeat(rows.ravel(), matrix.ravel()), np.repeat(columns.ravel(), matrix.ravel())
    if len(np.unique(np.r_[true, predicted])) == 1:  # one class only: chance agreement is total, kappa undefined
        return 1.0
    return float(cohen_kappa_score(true, predicted, labels=list(range(matrix.shape[0])), weights="quadratic"))


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
