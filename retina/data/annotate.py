"""Pseudo-labelling (DR-GAN's route to scale): a trained segmenter predicts lesion masks for a grades-only
set (EyePACS, APTOS) or a plain folder of photographs, written in the canonical format and marked as weak
labels in ``dataset.json`` so layout and render models can train on many more graded images.

Streams one batch at a time; an interrupted run keeps ``OUT.partial/`` and the next run continues after the
last written sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.dataset import resize_image
from retina.common.errors import RetinaError
from retina.common.imageio import list_images, read_image
from retina.common.progress import progress_bar, summary

THRESHOLD = 0.5


@dataclass
class _Item:
    name: str
    path: Path
    grade: int | None
    split: str


def _items(images: Path) -> list[_Item]:
    """The samples of a canonical set (keeping grade and split), or every image of a plain folder."""
    if (images / "labels.csv").is_file():
        index = CanonicalDataset(images)
        index.require_images("annotating photographs")
        return [_Item(s.name, index.image_path(s.name), s.grade, s.split) for s in index.samples]
    files = list_images(images)
    if not files:
        raise RetinaError(f"{images}: no images (png/jpg/tif) and no labels.csv; nothing to annotate")
    return [_Item(p.stem, p, None, "train") for p in files]


def _batches(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def predict_masks(model: torch.nn.Module, image: np.ndarray, resolution: int, device: torch.device) -> np.ndarray:
    """``uint8 (H, W, 3)`` -> probabilities ``(C, H, W)`` at the photograph's own size."""
    tensor = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0
    scaled = resize_image(tensor, resolution).to(device) * 2 - 1
    probabilities = torch.sigmoid(model(scaled))
    full = F.interpolate(probabilities, size=image.shape[:2], mode="bilinear", align_corners=False)
    return full[0].cpu().numpy()


def annotate(segmenter: Path, images: Path, out: Path, device: torch.device, batch_size: int = 8,
             overwrite: bool = False, show: bool = True) -> Path:
    from retina.bench.segment import load_segmenter

    model, spec, checkpoint = load_segmenter(segmenter)
    model.to(device).eval()
    items = _items(images)
    provenance = {
        "labels": "weak", "weak_labels": True,
        "note": "masks predicted by a segmenter (pseudo-labels), not drawn by graders",
        "segmenter": str(checkpoint.path), "segmenter_sha256": checkpoint.sha256,
        "segmenter_arch": spec.model, "channels": list(spec.channels), "resolution": spec.resolution,
        "threshold": THRESHOLD, "images": str(images),
    }
    written = 0
    with CanonicalWriter(out, provenance=provenance, overwrite=overwrite, resume=True, keep_partial=True) as writer:
        todo = [item for item in items if item.name not in writer.done]
        resumed = len(items) - len(todo)
        with progress_bar(len(items), "annotate", enabled=show) as bar:
            bar.advance(resumed)
            for batch in _batches(todo, batch_size):
                for item in batch:
                    image = read_image(item.path)
                    probabilities = predict_masks(model, image, spec.resolution, device)
                    masks = {c: probabilities[i] >= THRESHOLD for i, c in enumerate(spec.channels)}
                    writer.add(item.name, image=image, masks=masks, grade=item.grade, split=item.split,
                               source="pseudo-label")
                    written += 1
                bar.advance(len(batch))
    summary(f"annotate: {written} images labelled ({resumed} already done) with {spec.model} "
            f"[{','.join(spec.channels)}] {checkpoint.short_hash} -> {out} (weak labels)", show)
    return out
