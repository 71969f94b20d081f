"""Fréchet distance and kernel (KID) distance between two sets of features, both clean-fid's own code.

The Fréchet distance is clean-fid's ``frechet_distance`` (``scipy.linalg.sqrtm``). KID (Bińkowski et al. 2018) is
clean-fid's ``kernel_distance``: MMD² with the cubic polynomial kernel ``(x·y/d + 1)^3``, averaged over 100 random
subsets of ``min(n_a, n_b, 1000)`` features from each set, its within-set terms leaving out i = j and its cross term
over all pairs (the estimator torchmetrics' KID uses too). It is unbiased for independent sets; a set compared with
itself reads slightly below 0. clean-fid draws the subsets from NumPy's global RNG, so its KID changes from run to
run; here that RNG is seeded for the call and restored after it, which makes the value reproducible and equal to
``np.random.seed(seed); cleanfid.fid.kernel_distance(a, b)``.
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


KID_VARIANT = ("clean-fid's kernel_distance: MMD^2, cubic kernel (x.y/d + 1)^3, within-set terms without i = j, "
               "cross term over all pairs, mean over 100 subsets of min(n, 1000)")


def kernel_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """clean-fid's KID estimator (see the module docstring) with its subsets drawn under ``np.random.seed(seed)``."""
    from cleanfid.fid import kernel_distance as cleanfid_kernel_distance

    _check(features_a, features_b, 2)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return float(cleanfid_kernel_distance(np.asarray(features_a, np.float64), np.asarray(features_b, np.float64),
                                              num_subsets=num_subsets, max_subset_size=max_subset_size))
    finally:
        np.random.set_state(state)
