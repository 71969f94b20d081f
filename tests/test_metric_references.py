"""The fidelity metrics against their reference implementations, on small synthetic fixtures made here.

MS-SSIM against pytorch-msssim; SWD against Karras et al.'s algorithm (progressive_growing_of_gans,
metrics/sliced_wasserstein.py) re-typed below with scipy instead of cv2; KID and FD against clean-fid's functions and
the formulas written out. Each test would fail for the fault it names.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from retina.common.errors import RetinaError
from retina.eval.frechet import frechet_distance, kernel_distance
from retina.eval.msssim import fewer_scales, ms_ssim, msssim_diversity, variant_name
from retina.eval.swd import SWDConfig, laplacian_pyramid, sliced_wasserstein, sliced_wasserstein_distance


def smooth_images(n: int, size: int, seed: int, blur: float = 2.0) -> torch.Tensor:
    """Blurred noise in [0, 1]: structure at several scales, so MS-SSIM and SWD are far from their extremes."""
    rng = np.random.default_rng(seed)
    noise = rng.random((n, 3, size, size))
    return torch.from_numpy(scipy.ndimage.gaussian_filter(noise, (0, 0, blur, blur))).float().clamp(0, 1)


def stretch(images: torch.Tensor) -> torch.Tensor:
    low, high = images.amin(dim=(1, 2, 3), keepdim=True), images.amax(dim=(1, 2, 3), keepdim=True)
    return (images - low) / (high - low)


# -- MS-SSIM ---------------------------------------------------------------------------------------------------------
def test_msssim_equals_pytorch_msssim_at_256px():
    import pytorch_msssim

    x = stretch(smooth_images(3, 256, 0))
    y = (x + 0.15 * torch.randn_like(x)).clamp(0, 1)
    reference = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False)
    assert 0.3 < float(reference.min()) and float(reference.max()) < 0.95  # a value far from the extremes
    assert torch.allclose(ms_ssim(x, y), reference, atol=1e-6)
    # The path used below 161 px is the same algorithm: with all five scales it matches the package too (weights
    # renormalised from 0.9999 to 1: < 0.1 %). A reflect-padded filter or mean(l)*mean(cs) at the last scale fails.
    assert torch.allclose(fewer_scales(x, y, 5), reference, rtol=1e-3)
    assert variant_name(256) == "MS-SSIM" and variant_name(161) == "MS-SSIM"


def test_msssim_below_161px_is_the_named_fewer_scale_variant():
    import pytorch_msssim

    x = stretch(smooth_images(2, 128, 1))
    y = (x + 0.15 * torch.randn_like(x)).clamp(0, 1)
    with pytest.raises(AssertionError, match="larger than 160"):  # why there is a variant at all
        pytorch_msssim.ms_ssim(x, y, data_range=1.0)
    assert variant_name(128) == "MS-SSIM-4scale" and variant_name(64) == "MS-SSIM-3scale"
    assert variant_name(32) == "MS-SSIM-2scale"
    # Four scales at 128 px: the 5-scale product of a 256 px upscale is a different number; identical images are 1.
    assert torch.allclose(ms_ssim(x, x), torch.ones(2))
    assert torch.allclose(ms_ssim(x, y), fewer_scales(x, y, 4))
    with pytest.raises(RetinaError, match="larger than 10 px.*got 8 px"):
        ms_ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    assert 0 < msssim_diversity(smooth_images(4, 64, 2), pairs=6) < 1


# -- SWD -------------------------------------------------------------------------------------------------------------
KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None].astype(np.float32) / 256.0


def reference_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """Karras et al.'s pyr_down / pyr_up / generate_laplacian_pyramid, with scipy (no cv2)."""
    pyramid = [np.float32(images)]
    for _ in range(1, levels):
        down = scipy.ndimage.convolve(pyramid[-1], KERNEL, mode="mirror")[:, :, ::2, ::2]
        up = np.zeros_like(pyramid[-1])
        up[:, :, ::2, ::2] = down
        pyramid[-1] = pyramid[-1] - scipy.ndimage.convolve(up, KERNEL * 4.0, mode="mirror")
        pyramid.append(down)
    return pyramid


def reference_swd(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    """The reference algorithm, re-typed: 128 neighbourhoods of 7x7 per image and level, per-channel normalisation,
    4 x 128 unit directions, sorted projections; random draws in the order retina.eval.swd documents."""
    rng = np.random.default_rng(seed)
    levels = int(np.log2(a.shape[-1] / 16)) + 1
    descriptors = []
    for images in (a, b):
        per_level = []
        for level in reference_pyramid(images, levels):
            n, _, height, width = level.shape
            nhood, chan, dy, dx = np.ogrid[0 : 128 * n, 0:3, -3:4, -3:4]
            x = dx + rng.integers(3, width - 3, 128 * n)[:, None, None, None]
            y = dy + rng.integers(3, height - 3, 128 * n)[:, None, None, None]
            desc = level.flat[(((nhood // 128) * 3 + chan) * height + y) * width + x]
            desc = (desc - desc.mean(axis=(0, 2, 3), keepdims=True)) / desc.std(axis=(0, 2, 3), keepdims=True)
            per_level.append(desc.reshape(len(desc), -1))
        descriptors.append(per_level)
    distances = []
    for desc_a, desc_b in zip(*descriptors, strict=True):
        repeats = []
        for _ in range(4):
            dirs = rng.standard_normal((desc_a.shape[1], 128))
            dirs = (dirs / np.sqrt(np.sum(dirs**2, axis=0, keepdims=True))).astype(np.float32)
            repeats.append(np.mean(np.abs(np.sort(desc_a @ dirs, axis=0) - np.sort(desc_b @ dirs, axis=0))))
        distances.append(np.mean(repeats) * 1e3)
    return float(np.mean(distances))


def test_swd_pyramid_is_cv2_style_as_the_reference():
    images = smooth_images(3, 64, 3, blur=1.0).numpy() * 255
    ours, reference = laplacian_pyramid(images, 3), reference_pyramid(images, 3)
    assert [level.shape[-1] for level in ours] == [64, 32, 16]
    for level, expected in zip(ours, reference, strict=True):
        np.testing.assert_allclose(level, expected, atol=1e-3)  # float32 round-off on a 0..255 scale
    # kornia's pyramid (a different blur and border) moves levels by several percent: this tolerance rejects it.
    assert np.abs(ours[1]).mean() > 100 * 1e-3


def test_swd_equals_the_reference_algorithm_on_the_same_draws():
    a = smooth_images(4, 32, 4, blur=1.0)
    b = stretch(smooth_images(4, 32, 5, blur=1.5))
    ours = sliced_wasserstein_distance(a, b, SWDConfig(seed=3))
    assert set(ours) == {"SWD-32px", "SWD-16px", "SWD"}
    assert ours["SWD"] == pytest.approx(reference_swd(a.numpy(), b.numpy(), seed=3), rel=1e-4)
    assert ours["SWD"] > 10


def test_swd_of_a_set_against_a_shuffled_copy_is_the_noise_level_not_zero():
    """Independent draws per set: a set against a permutation of itself reads like two samples of one distribution
    (shared positions, the old fault, gave exactly 0), and far below a different distribution."""
    images = smooth_images(16, 32, 6, blur=1.0)
    other_half = smooth_images(16, 32, 7, blur=1.0)  # same distribution, other images
    different = smooth_images(16, 32, 8, blur=4.0)  # another distribution (coarser structure)
    permutation = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    self_value = sliced_wasserstein_distance(images, images[permutation])["SWD"]
    copy_value = sliced_wasserstein_distance(images, images.clone())["SWD"]
    between = sliced_wasserstein_distance(images, other_half)["SWD"]
    far = sliced_wasserstein_distance(images, different)["SWD"]
    assert 0.3 * between < self_value < 3 * between and 0.3 * between < copy_value < 3 * between
    assert far > 2 * max(self_value, between)


def test_sliced_wasserstein_is_a_distribution_distance_not_paired_differences():
    """Sorted projections: reordering one descriptor set changes nothing. Comparing unsorted, paired projections
    would read this as far apart."""
    rng = np.random.default_rng(9)
    a = rng.standard_normal((256, 147)).astype(np.float32)
    shuffled = a[rng.permutation(256)]
    assert sliced_wasserstein(a, shuffled, 4, 128, np.random.default_rng(0)) == pytest.approx(0.0, abs=1e-6)
    # A shift c of every component moves each sorted projection by c * sum(u), sum(u) ~ N(0, 1) for unit u.
    shifted = sliced_wasserstein(a, a + 0.5, 4, 128, np.random.default_rng(0))
    assert shifted == pytest.approx(0.5 * np.sqrt(2 / np.pi), rel=0.15)


def test_swd_errors_name_the_size():
    with pytest.raises(RetinaError, match="at least 16 px, got 8"):
        sliced_wasserstein_distance(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    with pytest.raises(RetinaError, match="one shape"):
        sliced_wasserstein_distance(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 16, 16))


# -- KID and FD ------------------------------------------------------------------------------------------------------
def features_pair(n: int = 40, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10)
    return rng.normal(size=(n, d)), rng.normal(size=(n + 5, d)) * 1.2 + 0.3


def mmd2(x: np.ndarray, y: np.ndarray, degree: int) -> float:
    """clean-fid's estimator written out: within-set sums without the diagonal, cross term over all pairs."""
    d, m = x.shape[1], len(x)
    k_xx, k_yy, k_xy = ((p @ q.T / d + 1) ** degree for p, q in ((x, x), (y, y), (x, y)))
    return float((k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1)) - 2 * k_xy.mean())


def test_kid_equals_clean_fid_kernel_distance():
    from cleanfid.fid import kernel_distance as cleanfid_kernel_distance

    a, b = features_pair()
    np.random.seed(5)
    reference = cleanfid_kernel_distance(a, b, num_subsets=7, max_subset_size=30)
    assert kernel_distance(a, b, num_subsets=7, max_subset_size=30, seed=5) == pytest.approx(reference, rel=1e-12)
    state = np.random.get_state()[1].copy()
    kernel_distance(a, b, seed=1)
    assert np.array_equal(np.random.get_state()[1], state)  # the global RNG is left as it was


def test_kid_is_the_cubic_kernel_estimator_written_out():
    a, b = features_pair(n=30)
    b = b[:30]
    ours = kernel_distance(a, b, num_subsets=1)  # one subset of all 30: any order gives the same value
    assert ours == pytest.approx(mmd2(a, b, degree=3), rel=1e-9)
    assert ours != pytest.approx(mmd2(a, b, degree=2), rel=0.05)  # a quadratic kernel would fail
    # The variant: a set against itself reads below 0 (the cross term keeps i = j: O(1/m)), where the U-statistic
    # with shared indices gives exactly 0.
    self_value = kernel_distance(a, a, num_subsets=1)
    assert self_value == pytest.approx(mmd2(a, a, degree=3), rel=1e-9) and self_value < -1e-3


def test_fd_equals_clean_fid_and_the_formula():
    import scipy.linalg
    from cleanfid.fid import frechet_distance as cleanfid_frechet

    a, b = features_pair()
    mu_a, mu_b, sigma_a, sigma_b = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ours = frechet_distance(a, b)
    assert ours == pytest.approx(cleanfid_frechet(mu_a, sigma_a, mu_b, sigma_b), rel=1e-9)
    formula = np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a + sigma_b - 2 * scipy.linalg.sqrtm(sigma_a @ sigma_b).real)
    assert ours == pytest.approx(formula, rel=1e-6)
    # Fewer images than dimensions (the exact low-rank route) agrees with the formula on the singular covariances.
    small_a, small_b = a[:8], b[:9]
    s_a, s_b = np.cov(small_a, rowvar=False), np.cov(small_b, rowvar=False)
    formula = np.sum((small_a.mean(0) - small_b.mean(0)) ** 2) + np.trace(
        s_a + s_b - 2 * scipy.linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(small_a, small_b) == pytest.approx(formula, rel=1e-3)
