"""``retina data export``: a canonical set in the layouts segmentation tools train on.

- ``nnunet`` (nnU-Net v2 raw data set): ``imagesTr/NAME_0000.png`` (RGB, read by nnU-Net's NaturalImage2DIO as
  three channels), ``labelsTr/NAME.png`` and ``dataset.json`` with ``channel_names``, ``labels``, ``numTraining``
  and ``file_ending``. Lesions overlap (a haemorrhage on a vessel), which one class per pixel cannot hold, so the
  label is a bit field (channel k sets bit k) and ``labels`` lists region-based labels: region k is every value
  with bit k set, and ``regions_class_order`` gives nnU-Net its conversion back. Rows with split=test go to
  ``imagesTs``/``labelsTs`` (nnU-Net never trains on them); train and val rows both go to ``imagesTr`` (nnU-Net
  draws its own cross-validation folds).
- ``monai``: a Decathlon-style datalist (``datalist.json``, read by ``monai.data.load_decathlon_datalist``) whose
  ``label`` is the list of per-channel mask files, so ``LoadImaged`` stacks them into a multi-channel label;
  ``training`` / ``validation`` / ``test`` from the split column.
- ``labelmap``: one integer class per pixel (``labelmaps/NAME.png``) for SPADE / pix2pixHD users, painted in the
  documented order ``LABELMAP_ORDER`` (later classes win where masks overlap: small lesions last, so they survive);
  ``labelmap.json`` names the classes.

Every export is written to ``OUT.partial`` and renamed when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.imageio import write_png
from retina.common.output import staged_folder
from retina.common.progress import progress_bar
from retina.common.schema import CHANNEL_NAMES, CHANNELS

FORMATS = ("nnunet", "monai", "labelmap")
# Painting order of the label map: class i + 1 is LABELMAP_ORDER[i]; 0 is outside the field of view.
LABELMAP_ORDER = ("fov", "vessels", "od", "fp", "laser", "nv", "se", "ex", "he", "ma")
LONG_NAMES = {c.name: c.long_name for c in CHANNELS}


def export_channels(data: CanonicalDataset, channels: list[str] | None) -> list[str]:
    """The label channels to export: those asked for, else every mask channel of the set but the field of view."""
    chosen = [c for c in data.channels if c != "fov"] if not channels else list(channels)
    unknown = [c for c in chosen if c not in CHANNEL_NAMES]
    if unknown:
        raise RetinaError(f"--channels {','.join(unknown)}: unknown; channels are {', '.join(CHANNEL_NAMES)}")
    data.require_channels(chosen, "the export")
    if not chosen:
        raise RetinaError(f"{data.root}: no mask channel to export")
    return chosen


def bit_field(masks: np.ndarray) -> np.ndarray:
    """``bool (K, H, W)`` -> integer label whose bit k is set where channel k is (uint8 up to 8 channels)."""
    dtype = np.uint8 if masks.shape[0] <= 8 else np.uint16
    label = np.zeros(masks.shape[1:], dtype)
    for k, plane in enumerate(masks):
        label |= (plane.astype(dtype) << k)
    return label


def nnunet_labels(channels: list[str]) -> tuple[dict[str, Any], list[int]]:
    """Region-based ``labels`` of nnU-Net v2 for a bit-field label, and its ``regions_class_order``."""
    values = range(1, 2 ** len(channels))
    labels: dict[str, Any] = {"background": 0}
    for k, channel in enumerate(channels):
        labels[channel] = [v for v in values if v >> k & 1]
    return labels, [2 ** k for k in range(len(channels))]


def _write_label(path: Path, label: np.ndarray) -> None:
    if label.dtype == np.uint8:
        write_png(path, label)
    else:  # 16-bit PNG for more than 8 channels
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(label.astype(np.uint16)).save(path, format="PNG")


def export_dataset(source: str | Path, out: str | Path, fmt: str, *, channels: list[str] | None = None,
                   name: str = "retina", dataset_id: int = 500, overwrite: bool = False,
                   show_progress: bool = True) -> dict[str, Any]:
    """Write ``out`` in ``fmt`` (one of :data:`FORMATS`) from the canonical set ``source``."""
    if fmt not in FORMATS:
        raise RetinaError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    data = CanonicalDataset(source)
    data.require_images(f"a {fmt} export")
    out = Path(out)
    if fmt == "nnunet" and not out.name.startswith("Dataset"):
        out = out / f"Dataset{dataset_id:03d}_{name}"  # nnU-Net finds raw sets by this folder name
    chosen = LABELMAP_ORDER if fmt == "labelmap" else export_channels(data, channels)
    if fmt == "labelmap":
        data.require_channels(["fov"], "a label map (class 0 is outside the field of view)")
        chosen = tuple(c for c in LABELMAP_ORDER if c in data.channels)
    counts = {"train": 0, "val": 0, "test": 0}
    entries: dict[str, list[dict[str, Any]]] = {"training": [], "validation": [], "test": []}
    with staged_folder(out, overwrite) as root, progress_bar(len(data), f"export {fmt}", enabled=show_progress) as bar:
        for sample in data.samples:
            counts[sample.split] = counts.get(sample.split, 0) + 1
            masks = data.load_masks(sample.name, chosen)
            held_out = sample.split == "test"
            if fmt == "nnunet":
                folder = "Ts" if held_out else "Tr"
                (root / f"images{folder}").mkdir(exist_ok=True)
                shutil.copyfile(data.image_path(sample.name), root / f"images{folder}" / f"{sample.name}_0000.png")
                _write_label(root / f"labels{folder}" / f"{sample.name}.png", bit_field(masks))
            elif fmt == "monai":
                (root / "images").mkdir(exist_ok=True)
                shutil.copyfile(data.image_path(sample.name), root / "images" / f"{sample.name}.png")
                for plane, channel in zip(masks, chosen, strict=True):
                    write_png(root / "labels" / channel / f"{sample.name}.png", plane)
                key = {"train": "training", "val": "validation", "test": "test"}.get(sample.split, "training")
                entries[key].append({"image": f"images/{sample.name}.png", "grade": sample.grade,
                                     "label": [f"labels/{c}/{sample.name}.png" for c in chosen]})
            else:
                label = np.zeros(masks.shape[1:], np.uint8)
                for plane, channel in zip(masks, chosen, strict=True):
                    label[plane] = LABELMAP_ORDER.index(channel) + 1
                (root / "images").mkdir(exist_ok=True)
                shutil.copyfile(data.image_path(sample.name), root / "images" / f"{sample.name}.png")
                write_png(root / "labelmaps" / f"{sample.name}.png", label)
            bar.advance(1)
        if fmt == "nnunet":
            labels, order = nnunet_labels(list(chosen))
            info = {
                "channel_names": {"0": "R", "1": "G", "2": "B"},
                "labels": labels,
                "regions_class_order": order,
                "numTraining": counts["train"] + counts["val"],
                "file_ending": ".png",
                "name": name,
                "description": f"exported by retina from {data.root.name}: label bit k = {', '.join(chosen)}[k]; "
                               "overlapping lesions are region-based labels. imagesTs holds the split=test rows.",
                "retina_channels": list(chosen),
            }
            (root / "dataset.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        elif fmt == "monai":
            datalist = {"name": name, "channels": list(chosen), "labels": {c: LONG_NAMES[c] for c in chosen},
                        **entries}
            (root / "datalist.json").write_text(json.dumps(datalist, indent=2) + "\n", encoding="utf-8")
        else:
            table = {"classes": {"0": "outside the field of view",
                                 **{str(LABELMAP_ORDER.index(c) + 1): LONG_NAMES[c] for c in chosen}},
                     "order": "painted in class order; where masks overlap the higher class wins",
                     "names": {str(LABELMAP_ORDER.index(c) + 1): c for c in chosen}}
            (root / "labelmap.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return {"out": str(out), "format": fmt, "count": len(data), "channels": list(chosen), "splits": counts}
