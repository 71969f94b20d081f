"""Fréchet distance and kernel (KID) distance between two sets of features.

The Fréchet distance is clean-fid's own (``scipy.linalg.sqrtm``). KID (Bińkowski et al. 2018) is the unbiased MMD²
with the cubic polynomial kernel averaged over random subsets, like clean-fid's, with two differences: a seeded
generator (clean-fid draws from NumPy's global RNG, so its KID changes from run to run), and the U-statistic of
Gretton et al. 2012 (eq. 3), whose cross term leaves out the i = j pairs, with the same subset indices in both sets
when they are the same size: then a set compared with itself gives exactly 0, where clean-fid's estimator (cross term
over all pairs) is biased below 0 for a self-comparison. Both estimators are unbiased for independent sets.
"""

from __future__ import annotations

import numpy as np

from retina.common.errors import RetinaError


def metric_name(kind: str, extractor_name: str) -> str:
    """``FID``/``KID`` only for clean-fid's Inception; otherwise ``FD-<extractor>``/``KD-<extractor>``."""
    if extractor_name == "Inception":
        return {"fd": "FID", "kd": "KID"}[kind]
    return f"{kind.upper()}-{extractor_name}"


def _check(a: np.ndarray, b: np.ndarray, minimum: int) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise RetinaError(f"feature sets must be (N, D) with the same D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < minimum:
        raise RetinaError(f"need at least {minimum} images per set, got {len(a)} and {len(b)}")


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's)."""
    _check(features_a, features_b, 2)
    if max(len(features_a), len(features_b)) < features_a.shape[1]:
        return max(_frechet_low_rank(features_a, features_b), 0.0)
    import warnings

    from cleanfid.fid import frechet_distance as cleanfid_frechet

    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    sigma_a, sigma_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # clean-fid passes sqrtm's deprecated `disp`
        distance = float(cleanfid_frechet(mu_a, sigma_a, mu_b, sigma_b))
    # sqrtm's round-off leaves |FD| ~ 1e-6 on identical sets; a negative distance is never meaningful.
    return max(distance, 0.0)


def _frechet_low_rank(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The same distance when there are fewer images than feature dimensions: the covariances are singular, where
    sqrtm of a (d, d) product is slow (2048-d: minutes on CPU) and inaccurate. With centred features A, B and
    Σa = AᵀA/(na-1), the non-zero eigenvalues of ΣaΣb are the squared singular values of ABᵀ/sqrt((na-1)(nb-1)),
    so tr sqrt(ΣaΣb) is the nuclear norm of that small (na, nb) matrix: exact."""
    centred_a = features_a - features_a.mean(0)
    centred_b = features_b - features_b.mean(0)
    scale_a, scale_b = len(features_a) - 1, len(features_b) - 1
    mean_term = float(np.sum((features_a.mean(0) - features_b.mean(0)) ** 2))
    trace_a = float(np.sum(centred_a**2)) / scale_a
    trace_b = float(np.sum(centred_b**2)) / scale_b
    trace_sqrt = float(np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()) / np.sqrt(scale_a * scale_b)
    return mean_term + trace_a + trace_b - 2 * trace_sqrt


def kernel_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """Unbiased MMD² with the cubic polynomial kernel ``(x·y/d + 1)^3`` (KID when the features are Inception's)."""
    _check(features_a, features_b, 2)
    rng = np.random.default_rng(seed)
    d = features_a.shape[1]
    m = min(len(features_a), len(features_b), max_subset_size)
    total = 0.0
    same_size = len(features_a) == len(features_b)
    for _ in range(num_subsets):
        index_a = rng.choice(len(features_a), m, replace=False)
        index_b = index_a if same_size else rng.choice(len(features_b), m, replace=False)
        x, y = features_a[index_a], features_b[index_b]
        within = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        across = (x @ y.T / d + 1) ** 3
        off_diagonal = within.sum() - np.trace(within) - 2 * (across.sum() - np.trace(across))
        total += off_diagonal / (m * (m - 1))
    return float(total / num_subsets)
