"""Which snapshot of a renderer is ``best``: measured on held-out data, never on training images.

At every snapshot the EMA generator renders the masks of the training set's ``split=val`` rows (at most
``RenderConfig.val_images``, with fixed per-image noise and grading vectors, so snapshots differ only by their
weights), and the renders are compared with those rows' photographs at the same size:

- FD-EffNetLite0: the Fréchet distance of EfficientNet-Lite0 features (offline ImageNet weights), through the same
  clean-fid pipeline as ``retina eval fidelity`` (both sets written as PNGs, then its anti-aliased resize); it
  chooses ``best`` (lower is better). It needs two images per set; with a single val row SWD chooses instead.
- SWD (×10³, Karras et al. 2018) of the same two sets, reported beside it.
- L1 to the val photographs, reported only: it favours blurry renders.

A set without ``split=val`` rows has nothing held out to choose on: ``best`` is then the latest snapshot, and the
run says so once. Test rows are never read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from retina.common.imageio import write_png
from retina.eval.features import EffNetLite0, FeatureExtractor, extract_features
from retina.eval.frechet import frechet_distance, metric_name
from retina.eval.swd import sliced_wasserstein_distance


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` in [-1, 1] -> ``uint8 (N, H, W, 3)``, as a saved render would be."""
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def image_features(images: torch.Tensor, extractor: FeatureExtractor, device: torch.device) -> np.ndarray:
    """Features of in-memory images through the file pipeline of :func:`extract_features` (PNG, clean resize)."""
    with tempfile.TemporaryDirectory(prefix="retina-selection-") as folder:
        files = []
        for i, picture in enumerate(to_uint8(images)):
            path = Path(folder) / f"{i:05d}.png"
            write_png(path, picture)
            files.append(path)
        return extract_features(files, extractor, device)


class HeldOutSelection:
    """Scores renders of the val masks against the val photographs; :meth:`score` says whether it is the best."""

    def __init__(self, real: torch.Tensor, device: torch.device, extractor: FeatureExtractor | None = None):
        self.device = device
        self.extractor = extractor or EffNetLite0()
        self.real = real.float().cpu()
        self.real_features = image_features(self.real, self.extractor, device)
        self.fd_name = metric_name("fd", self.extractor.name)
        self.metric = self.fd_name if len(real) >= 2 else "SWD"
        self.best = float("inf")

    def score(self, fake: torch.Tensor) -> dict[str, float]:
        """Metrics of one snapshot's renders (same order as the real images); ``is_best`` updates the record."""
        fake = fake.float().cpu()
        result = {}
        if len(fake) >= 2:
            result[self.fd_name] = frechet_distance(image_features(fake, self.extractor, self.device),
                                                    self.real_features)
        result["SWD"] = sliced_wasserstein_distance(fake, self.real)["SWD"]
        result["L1"] = float((fake - self.real).abs().mean())
        value = result[self.metric]
        result["is_best"] = value < self.best
        self.best = min(self.best, value)
        return result
