"""Pseudo-labelling (DR-GAN's route to scale): a trained segmenter predicts lesion masks for a grades-only
set (EyePACS, APTOS) or a plain folder of photographs, written in the canonical format and marked as weak
labels in ``retina.json`` so layout and render models can train on many more graded images.

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
    source: str = "pseudo-label"
    extra: dict[str, str] | None = None


def _items(images: Path) -> list[_Item]:
    """The samples of a canonical set (keeping grade and split), or every image of a plain folder."""
    if (images / "labels.csv").is_file():
        index = CanonicalDataset(images)
        index.require_images("annotating photographs")
        return [_Item(s.name, index.image_path(s.name), s.grade, s.split, s.source, s.extra) for s in index.samples]
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
             overwrite: bool = False, show: bool = True, add: bool = False) -> Path:
    """Write ``out``: the photographs of ``images`` with the segmenter's masks (weak labels).

    ``add``: ``images`` is a canonical set whose masks are kept (graders' labels); the segmenter adds only the
    channels the set lacks (e.g. vessels for IDRiD), and those channels are marked weak in retina.json
    (``weak_channels``) and in labels.csv (a ``weak`` column per row).
    """
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
    kept: tuple[str, ...] = ()
    source = None  # with --add: the set whose masks are kept
    resolution = None
    extra_columns: list[str] = []
    if add:
        if not (images / "labels.csv").is_file():
            raise RetinaError(f"--add: {images} is not a canonical set (no labels.csv); --add keeps a set's masks "
                              "and adds the segmenter's channels, so it needs one")
        source = CanonicalDataset(images)
        clash = [c for c in spec.channels if c in source.channels]
        if clash:
            raise RetinaError(f"--add: {images} already has the channel(s) {', '.join(clash)} that the segmenter "
                              "predicts; drop --add to replace every mask, or use a segmenter for other channels")
        kept = source.channels
        resolution = source.resolution
        provenance = {**source.info.get("provenance", {}), "weak_channels": list(spec.channels),
                      "weak_labels_note": f"{', '.join(spec.channels)} predicted by a segmenter (pseudo-labels); "
                                          f"{', '.join(kept) or 'no other channel'} as in {images}",
                      "pseudo_labels": {k: v for k, v in provenance.items() if k not in ("labels", "weak_labels")}}
        extra_columns = sorted({k for item in items for k in (item.extra or {})} | {"weak"})
    written = 0
    with CanonicalWriter(out, provenance=provenance, overwrite=overwrite, resume=True, keep_partial=True,
                         resolution=resolution, extra_columns=extra_columns) as writer:
        todo = [item for item in items if item.name not in writer.done]
        resumed = len(items) - len(todo)
        with progress_bar(len(items), "annotate", enabled=show) as bar:
            bar.advance(resumed)
            for batch in _batches(todo, batch_size):
                for item in batch:
                    image = read_image(item.path)
                    probabilities = predict_masks(model, image, spec.resolution, device)
                    masks = {c: probabilities[i] >= THRESHOLD for i, c in enumerate(spec.channels)}
                    extra = {}
                    if source is not None:
                        masks.update(zip(kept, source.load_masks(item.name, kept), strict=True))
                        extra = {**(item.extra or {}), "weak": "+".join(spec.channels)}
                    writer.add(item.name, image=image, masks=masks, grade=item.grade, split=item.split,
                               source=item.source if source is not None else "pseudo-label", **extra)
                    written += 1
                bar.advance(len(batch))
    what = f"added [{','.join(spec.channels)}] to {len(kept)} kept channels" if source is not None else \
        f"[{','.join(spec.channels)}]"
    summary(f"annotate: {written} images labelled ({resumed} already done) with {spec.model} "
            f"{what} {checkpoint.short_hash} -> {out} (weak labels)", show)
    return out
