"""Fidelity of a generated data set against a real one: Fréchet/kernel distances on network features, SWD, and the
diversity scores MS-SSIM and LPIPS, for the whole sets and per DR grade (DR-GAN averages FID over the five grades).

Both sets are canonical folders (``images/`` + ``labels.csv``). Feature metrics read the image files through
clean-fid's pipeline at the extractor's own input size; pixel metrics (SWD, MS-SSIM, LPIPS) use the images resized to
``res``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from retina.common.canonical import CanonicalDataset, Sample
from retina.common.dataset import resize_image
from retina.common.errors import RetinaError
from retina.common.progress import progress_bar
from retina.eval.features import FeatureExtractor, build_extractor, extract_features
from retina.eval.frechet import KID_VARIANT, frechet_distance, kernel_distance, metric_name

ALL_METRICS = ("fd-effnet", "kd-effnet", "swd", "msssim", "lpips", "fid", "kid")
OFFLINE_METRICS = ("fd-effnet", "kd-effnet", "swd", "msssim")
# metric -> (feature extractor kind, "fd" | "kd")
FEATURE_METRICS = {"fd-effnet": ("effnet", "fd"), "kd-effnet": ("effnet", "kd"), "fid": ("inception", "fd"),
                   "kid": ("inception", "kd")}
# metric -> weights it needs from the registry
NEEDS_WEIGHTS = {"fid": "inception-fid", "kid": "inception-fid", "lpips": "alexnet"}


@dataclass
class FidelityOptions:
    metrics: tuple[str, ...] = OFFLINE_METRICS
    per_grade: bool = False
    res: int = 256
    weights_dir: str | Path | None = None
    device: str = "auto"
    batch_size: int = 16
    num_workers: int = 0
    pairs: int = 100  # random pairs for the diversity scores
    seed: int = 0
    max_images: int | None = None  # per set, the first ones in labels.csv order
    real_split: str | None = None  # only these rows of the real set (e.g. "test": images no generator saw)
    lpips_random_backbone: bool = False  # tests only: the output is then named as not a real LPIPS
    extractors: dict[str, FeatureExtractor] = field(default_factory=dict)  # kind -> extractor override (tests)
    progress: bool = True


def parse_metrics(spec: str | None, weights_dir: str | Path | None = None) -> tuple[str, ...]:
    """Comma list of metric names; ``None``: the offline ones plus those whose weights are present."""
    from retina.eval.weights import locate

    if spec is None:
        extra = tuple(m for m in ("lpips", "fid", "kid") if locate(NEEDS_WEIGHTS[m], weights_dir) is not None)
        return OFFLINE_METRICS + extra
    metrics = tuple(dict.fromkeys(m.strip().lower() for m in spec.split(",") if m.strip()))
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown or not metrics:
        raise RetinaError(f"--metrics {spec}: unknown metric(s) {', '.join(unknown) or '(none)'}; "
                          f"choose from {','.join(ALL_METRICS)}")
    return metrics


def _groups(real: list[Sample], fake: list[Sample], per_grade: bool) -> dict[str, tuple[list[int], list[int]]]:
    groups = {"all": (list(range(len(real))), list(range(len(fake))))}
    if per_grade:
        for grade in sorted({s.grade for s in real} & {s.grade for s in fake}):
            groups[f"grade {grade}"] = ([i for i, s in enumerate(real) if s.grade == grade],
                                        [i for i, s in enumerate(fake) if s.grade == grade])
    return groups


def _load_pixels(data: CanonicalDataset, samples: list[Sample], res: int) -> torch.Tensor:
    """float ``(N, 3, res, res)`` in [0, 1]."""
    images = []
    for sample in samples:
        image = torch.from_numpy(data.load_image(sample.name)).permute(2, 0, 1).float() / 255.0
        images.append(resize_image(image, res).clamp(0, 1))
    return torch.stack(images)


def evaluate_fidelity(real_dir: str | Path, fake_dir: str | Path, options: FidelityOptions | None = None) -> dict:
    """All requested metrics for the whole sets (``"all"``) and, with ``per_grade``, each grade present in both sets,
    plus ``grade_mean`` (the mean over grades of each metric). Returns a JSON-ready dict."""
    from retina.common.device import resolve_device
    from retina.eval.weights import entry as weights_entry
    from retina.eval.weights import find_weights

    options = options or FidelityOptions()
    device = resolve_device(options.device)
    # Missing weights fail here, in one line, before minutes of feature extraction.
    weights_used = {}
    for metric in options.metrics:
        needed = NEEDS_WEIGHTS.get(metric)
        if metric == "lpips" and options.lpips_random_backbone:
            continue
        if needed and FEATURE_METRICS.get(metric, ("",))[0] not in options.extractors:
            path = find_weights(needed, options.weights_dir)
            weights_used[needed] = {"path": str(path), "sha256": weights_entry(needed).sha256}

    real_data, fake_data = CanonicalDataset(real_dir), CanonicalDataset(fake_dir)
    for data in (real_data, fake_data):
        data.require_images("fidelity metrics")
        if options.per_grade:
            data.require_grades("--per-grade")
    real = [s for s in real_data.samples if options.real_split in (None, s.split)][: options.max_images]
    if not real:
        raise RetinaError(f"{real_data.root}/labels.csv: no rows with split={options.real_split}; make a split with "
                          "`retina data split` or leave --real-split out")
    fake = fake_data.samples[: options.max_images]
    groups = _groups(real, fake, options.per_grade)
    results: dict[str, dict[str, float]] = {group: {} for group in groups}
    skipped: dict[str, str] = {}
    for group, (real_index, fake_index) in groups.items():
        if min(len(real_index), len(fake_index)) < 2:
            skipped[group] = f"{len(real_index)} real and {len(fake_index)} generated images: at least 2 each needed"
    extractor_names = {}

    # Feature metrics: one extraction per extractor for each set, then sliced per group.
    for kind in dict.fromkeys(FEATURE_METRICS[m][0] for m in options.metrics if m in FEATURE_METRICS):
        extractor = options.extractors.get(kind) or build_extractor(kind, options.weights_dir)
        extractor_names[kind] = extractor.name
        with progress_bar(len(real) + len(fake), f"{extractor.name} features", options.progress) as bar:
            features = [
                extract_features([data.image_path(s.name) for s in samples], extractor, device, options.batch_size,
                                 options.num_workers, on_batch=bar.advance)
                for data, samples in ((real_data, real), (fake_data, fake))
            ]
        for metric in options.metrics:
            if FEATURE_METRICS.get(metric, ("",))[0] != kind:
                continue
            distance_kind = FEATURE_METRICS[metric][1]
            name = metric_name(distance_kind, extractor.name)
            for group, (real_index, fake_index) in groups.items():
                if group in skipped:
                    continue
                a, b = features[0][real_index], features[1][fake_index]
                if distance_kind == "fd":
                    results[group][name] = _fd(a, b)
                else:
                    results[group][name] = kernel_distance(a, b, seed=options.seed)

    pixel_metrics = [m for m in options.metrics if m in ("swd", "msssim", "lpips")]
    if pixel_metrics:
        from retina.eval.lpips_diversity import build_lpips, lpips_diversity
        from retina.eval.msssim import msssim_diversity, variant_name
        from retina.eval.swd import SWDConfig, sliced_wasserstein_distance

        with progress_bar(len(real) + len(fake), f"loading images at {options.res} px", options.progress) as bar:
            real_pixels = _load_pixels(real_data, real, options.res)
            bar.advance(len(real))
            fake_pixels = _load_pixels(fake_data, fake, options.res)
            bar.advance(len(fake))
        lpips_model = None
        if "lpips" in pixel_metrics:
            lpips_model = build_lpips("alex", options.weights_dir, options.lpips_random_backbone)
        for group, (real_index, fake_index) in groups.items():
            if group in skipped:
                continue
            a, b = real_pixels[real_index], fake_pixels[fake_index]
            if "swd" in pixel_metrics:
                results[group].update(sliced_wasserstein_distance(a, b, SWDConfig(seed=options.seed)))
            if "msssim" in pixel_metrics:
                msssim = variant_name(options.res)  # MS-SSIM-<k>scale below 161 px
                results[group][f"{msssim}-fake"] = msssim_diversity(b, options.pairs, options.seed)
                results[group][f"{msssim}-real"] = msssim_diversity(a, options.pairs, options.seed)
            if lpips_model is not None:
                for label, images in (("fake", b), ("real", a)):
                    name, value = lpips_diversity(images * 2 - 1, options.pairs, options.seed, device=device,
                                                  random_backbone=options.lpips_random_backbone, model=lpips_model)
                    results[group][f"{name}-{label}"] = value

    grade_groups = [g for g in results if g.startswith("grade ") and g not in skipped]
    grade_mean = {}
    if grade_groups:
        for name in results[grade_groups[0]]:
            grade_mean[name] = float(np.mean([results[g][name] for g in grade_groups]))
    return {
        "real": str(real_data.root),
        "real_split": options.real_split or "all rows",
        "fake": str(fake_data.root),
        "n_real": len(real),
        "n_fake": len(fake),
        "res": options.res,
        "seed": options.seed,
        "device": str(device),
        "extractors": extractor_names,
        "weights": weights_used,
        "fake_provenance": {k: fake_data.info[k] for k in ("model", "checkpoint", "seed", "provenance")
                            if k in fake_data.info},
        "metrics": results,
        "grade_mean": grade_mean,
        "grades_in_mean": [g.removeprefix("grade ") for g in grade_groups],
        "skipped": skipped,
        "variants": metric_variants(options),
        "notes": {
            "SWD": "x10^3, Karras et al. 2018 (per Laplacian level and mean)",
            "MS-SSIM": "mean over random pairs within one set: lower = more diverse",
            "FD/KD": "FID/KID only with clean-fid's Inception; FD-<net>/KD-<net> are the same statistics on <net>",
        },
    }


def metric_variants(options: FidelityOptions) -> dict[str, str]:
    """Which estimator each requested metric is, for the table and the JSON (values differ between variants)."""
    from retina.eval.msssim import scales_for, variant_name

    variants = {}
    if any(FEATURE_METRICS.get(m, ("", ""))[1] == "kd" for m in options.metrics):
        variants["KID/KD"] = KID_VARIANT
    if "swd" in options.metrics:
        variants["SWD"] = ("Karras et al.'s reference: cv2 Laplacian pyramid down to 16 px, 128 7x7 neighbourhoods "
                           "per image and level drawn independently per set, 4 x 128 directions")
    if "msssim" in options.metrics:
        scales = scales_for(options.res)
        variants[variant_name(options.res)] = (
            "pytorch-msssim, 5 scales" if scales == 5 else
            f"{scales} scales (5 need more than 160 px; Wang's first {scales} weights renormalised): not comparable "
            f"with a 5-scale MS-SSIM")
    return variants


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    try:
        return frechet_distance(a, b)
    except ValueError as error:  # clean-fid refuses a covariance square root with a large imaginary part
        raise RetinaError(f"Fréchet distance failed ({error}); use more images than a handful") from None
