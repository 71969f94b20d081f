"""What one user of ``retina studio`` is working on: a layout, its seed, the photograph rendered from it, and the
edits made so far. Plain Python (no web framework), so the studio's behaviour is tested without a browser.

Sampling and rendering go through the same code as the command line (``retina layout sample``, ``retina render``):
the layout of (grade, seed) is the first layout ``retina layout sample --grade G --seed S`` writes, and a
re-render uses the same seed, so after an edit only the pixels around it change.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retina import __version__
from retina.common.canonical import CanonicalWriter
from retina.common.errors import RetinaError
from retina.common.imageio import write_png
from retina.common.schema import CHANNEL_INDEX, CHANNEL_NAMES, CHANNELS
from retina.common.seeding import sample_seed
from retina.edit import Layout, add_lesions, grade_check, move, paint, remove_lesions, scale_lesions, with_grade
from retina.layout.post_process import clean_layout
from retina.render.infer import images_to_uint8, renderer_info

# Uploads: images only, at most this many bytes (Gradio's server refuses larger ones before they reach us too).
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MASK_UPLOAD_TYPES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# Lesions drawn over the photograph in their preview colours (retina.common.schema), this opaque.
OVERLAY_ALPHA = 0.65
SIZES = (128, 256, 512)


@dataclass
class StudioSession:
    layout_model: Any  # a retina.layout.model.LayoutSampler
    renderer: Any  # the render-model protocol of retina.render.model
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    layout: Layout | None = None
    seed: int = 0
    photo: np.ndarray | None = None
    edits: list[str] = field(default_factory=list)

    # -- making and drawing ---------------------------------------------------------------------------------
    def sample(self, grade: int, seed: int, size: int) -> None:
        if size not in SIZES:
            raise RetinaError(f"size {size}: choose one of {', '.join(map(str, SIZES))}")
        if seed < 0:
            raise RetinaError(f"seed {seed}: seeds are whole numbers 0 or more")
        layout_seed = sample_seed(int(seed), 0)  # as the first layout of `retina layout sample --seed SEED`
        masks = self.layout_model.sample([int(grade)], [layout_seed], int(size))[0]
        masks, _ = clean_layout(masks, CHANNEL_NAMES, self.layout_model.channels)
        self.layout, self.seed, self.edits = Layout(masks, int(grade)), int(seed), []
        self.render()

    def render(self) -> np.ndarray:
        layout = self._require()
        masks = torch.from_numpy(layout.masks.astype(np.float32))[None]
        model_input = torch.zeros(1, len(self.renderer.channels), *layout.size)
        for i, channel in enumerate(self.renderer.channels):
            model_input[0, i] = masks[0, CHANNEL_INDEX[channel]]
        grades = torch.tensor([layout.grade], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            images = self.renderer.render(model_input.to(self.device), grades, [sample_seed(self.seed, 0)])
        self.photo = images_to_uint8(images)[0]
        return self.photo

    def overlay(self) -> np.ndarray:
        """The photograph with every lesion and the disc painted in its preview colour."""
        layout, photo = self._require(), self._photo()
        picture = photo.astype(np.float32)
        for channel in CHANNELS:
            if channel.name in ("fov", "vessels"):
                continue
            where = layout.channel(channel.name)
            picture[where] = (1 - OVERLAY_ALPHA) * picture[where] + OVERLAY_ALPHA * np.array(channel.color)
        return picture.round().astype(np.uint8)

    # -- edits ------------------------------------------------------------------------------------------------
    def add(self, channel: str, n: int) -> None:
        self._edit(add_lesions(self._require(), channel, int(n), seed=sample_seed(self.seed, len(self.edits) + 1)),
                   f"add {int(n)} {channel}")

    def remove(self, channel: str) -> None:
        self._edit(remove_lesions(self._require(), channel), f"remove {channel}")

    def scale(self, channel: str, factor: float) -> None:
        self._edit(scale_lesions(self._require(), channel, factor), f"scale {channel} x{float(factor):g}")

    def move(self, channel: str, dx: int, dy: int) -> None:
        self._edit(move(self._require(), channel, int(dx), int(dy)), f"move {channel} {int(dx):+d},{int(dy):+d}")

    def paint(self, channel: str, stroke: np.ndarray, erase: bool = False) -> None:
        stroke = np.asarray(stroke, dtype=bool)
        if stroke.shape != self._require().size:
            raise RetinaError(f"brush stroke is {stroke.shape[1]}x{stroke.shape[0]}, the layout "
                              f"{self._require().size[1]}x{self._require().size[0]}")
        if stroke.any():
            self._edit(paint(self._require(), channel, stroke, erase), f"{'erase' if erase else 'paint'} {channel}")

    def upload(self, channel: str, path: str | Path) -> None:
        """Replace ``channel`` by an uploaded mask image (resized to the layout, max-pooled)."""
        from retina.common.dataset import resize_masks
        from retina.common.imageio import read_mask

        path, layout = Path(path), self._require()
        if path.suffix.lower() not in MASK_UPLOAD_TYPES:
            raise RetinaError(f"{path.name}: not an image; upload a {', '.join(MASK_UPLOAD_TYPES)} mask")
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise RetinaError(f"{path.name}: {path.stat().st_size / 2**20:.1f} MB, more than the "
                              f"{MAX_UPLOAD_BYTES // 2**20} MB uploads may have")
        mask = read_mask(path)  # the project's one mask reader: same decoding and decompression-bomb limit
        if mask.shape != layout.size:
            mask = resize_masks(torch.from_numpy(mask.astype(np.float32)), layout.size[0]).numpy() > 0.5
        self._edit(layout.with_channel(channel, mask), f"upload {channel}")

    def set_grade(self, grade: int) -> None:
        self._edit(with_grade(self._require(), grade), f"grade {int(grade)}")

    def banner(self) -> str:
        """What the grade rule says about the layout as it is now."""
        if self.layout is None:
            return "Sample a layout to start."
        check = grade_check(self.layout)
        return f"**{'Grade check' if check.consistent else 'Grade check: WARNING'}**: {check.summary()}"

    # -- downloads --------------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        layout = self._require()
        check = grade_check(layout)
        return {
            "software": f"retina {__version__} studio", "synthetic": True, "grade": layout.grade,
            "grade_rule": check.estimated, "grade_check": "ok" if check.consistent else list(check.problems),
            "seed": self.seed, "render_seed": sample_seed(self.seed, 0), "edits": list(self.edits),
            "layout_model": {"name": self.layout_model.name, "checkpoint": self.layout_model.checkpoint_hash or None},
            "renderer": renderer_info(self.renderer),
        }

    def export(self, folder: str | Path) -> tuple[Path, Path, Path]:
        """``photo.png``, ``masks.zip`` (a canonical set of one sample) and ``metadata.json`` in ``folder``."""
        layout, photo = self._require(), self._photo()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"studio_grade{layout.grade}_seed{self.seed}"
        photo_path, zip_path, meta_path = folder / f"{name}.png", folder / f"{name}_masks.zip", folder / f"{name}.json"
        write_png(photo_path, photo)
        metadata = self.metadata()
        staging = folder / f"{name}_masks"
        with CanonicalWriter(staging, resolution=layout.size[0], provenance={"studio": metadata},
                             extra_columns=("seed", "edits"), overwrite=True) as writer:
            writer.add(name, masks={c: layout.channel(c) for c in CHANNEL_NAMES}, grade=layout.grade,
                       source="studio", seed=self.seed, edits="; ".join(self.edits))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(staging.rglob("*")):
                if path.is_file():
                    archive.write(path, Path(name) / path.relative_to(staging))
        zip_path.write_bytes(buffer.getvalue())
        shutil.rmtree(staging)
        meta_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        return photo_path, zip_path, meta_path

    # -- internals --------------------------------------------------------------------------------------------
    def _edit(self, layout: Layout, description: str) -> None:
        self.layout = layout
        self.edits.append(description)

    def _require(self) -> Layout:
        if self.layout is None:
            raise RetinaError("no layout yet: sample one first")
        return self.layout

    def _photo(self) -> np.ndarray:
        return self.photo if self.photo is not None else self.render()
