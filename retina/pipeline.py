"""The Python API of retina: a layout model and a renderer joined into one label-then-image pipeline.

>>> from retina import Pipeline
>>> pipe = Pipeline.load()                        # the shipped models ("procedural", "procedural": the phantom)
>>> batch = pipe.generate(grades=[4] * 8, seed=0)  # images, mask stacks, grades, seeds and provenance, in memory
>>> pipe.save(batch, "synthetic/")                 # the canonical format every retina command reads

``retina generate`` runs the same code (:meth:`Pipeline.sample`) batch by batch, so an in-memory batch equals the
files the command writes for the same grades and seeds. Sample ``i`` of ``generate(seed=S)`` uses
``sample_seed(S, i)`` for its layout and its photograph, as the command does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retina.common.checkpoint import checkpoint_paths, file_sha256
from retina.common.errors import RetinaError, parse_grade
from retina.common.provenance import synthetic_png_text
from retina.common.schema import CHANNEL_NAMES
from retina.common.seeding import sample_seed

DEFAULT_RES = 256


@dataclass
class Batch:
    """``images`` uint8 (B, H, W, 3); ``masks`` bool (B, NUM_CHANNELS, H, W) in ``CHANNEL_NAMES`` order."""

    images: np.ndarray
    masks: np.ndarray
    grades: list[int]
    seeds: list[int]
    provenance: dict[str, Any] = field(default_factory=dict)
    post_processed: int = 0  # layouts the post-process changed (one disc, solid field of view)

    def __len__(self) -> int:
        return len(self.grades)


class Pipeline:
    """A layout model (``retina.layout.model``) and a renderer (``retina.render.model``) on one device."""

    def __init__(self, layout: Any, renderer: Any, device: torch.device, *, layout_checkpoint: Path | None = None,
                 render_checkpoint: Path | None = None, truncation: float = 1.0, post_process: bool = True,
                 vessels: Any | None = None):
        """``vessels``: a :class:`retina.layout.vessels.VesselSource` that redraws each layout's vessel tree."""
        self.layout, self.renderer, self.device = layout, renderer, device
        self.truncation, self.post_process, self.vessels = truncation, post_process, vessels
        self.layout_channels = tuple(getattr(layout, "channels", CHANNEL_NAMES))
        if vessels is not None and "vessels" not in self.layout_channels:
            self.layout_channels = tuple(c for c in CHANNEL_NAMES if c in (*self.layout_channels, "vessels"))
        # SkrGAN (--vessels sketch) draws no grade: its samples are written without one.
        self.unconditional = bool(getattr(layout, "unconditional", False))
        optional = set(getattr(renderer, "optional_channels", ()))
        lacking = [c for c in renderer.channels if c not in self.layout_channels and c not in optional]
        if lacking:
            raise RetinaError(f"the layout model {layout.name} does not draw {', '.join(lacking)}, needed by the "
                              f"{renderer.name} renderer; use a layout checkpoint trained with those channels")
        self._render_rows = [CHANNEL_NAMES.index(c) for c in renderer.channels]
        self._absent = [i for i, c in enumerate(renderer.channels) if c not in self.layout_channels]
        self._layout_info = self._describe_layout(layout_checkpoint)
        from retina.render.infer import renderer_info

        self._render_info = renderer_info(renderer, render_checkpoint)
        from retina.common.fingerprint import generator_record

        # with their training sets' fingerprints: what `retina bench` checks synthetic sets against for leaks
        self._generators = [
            generator_record("layout", layout.name, layout_checkpoint, learned=bool(layout.checkpoint_hash)),
            generator_record("renderer", renderer.name, render_checkpoint,
                             learned=bool(getattr(renderer, "checkpoint_hash", ""))),
        ]

    @classmethod
    def load(cls, layout: str | Path | None = None, renderer: str | Path | None = None, device: str = "auto", *,
             amp: bool = False, channels_last: bool = True, compile: bool = False, truncation: float = 1.0,
             post_process: bool = True, vessels: str = "gan", vessels_checkpoint: str | Path | None = None
             ) -> Pipeline:
        """``layout`` / ``renderer``: ``None`` or ``"shipped"`` for the models packaged with retina (the procedural
        ones where the package has none), ``"procedural"`` for the procedural prior and renderer, or a checkpoint
        (file or run folder). ``vessels``: ``gan`` (the layout's own), ``aae`` (a vessel AAE in
        ``vessels_checkpoint`` redraws them) or ``sketch``: SkrGAN, whose sketch generator (``vessels_checkpoint``)
        takes the layout model's place and whose colour renderer must be ``renderer``."""
        from retina.common.device import resolve_device
        from retina.layout.model import load_layout_model
        from retina.render.infer import open_renderer
        from retina.shipped import resolve_model

        device_ = resolve_device(device)
        if vessels == "sketch" and renderer in (None, "shipped"):
            renderer = "procedural"  # SkrGAN's colour renderer is its own model, never the shipped DR-GAN
        layout_ckpt = resolve_model(layout, "layout", "--layout")
        render_ckpt = resolve_model(renderer, "render", "--renderer")
        render_model = open_renderer(render_ckpt, device_, amp=amp, channels_last=channels_last, compile=compile)
        source = None
        if vessels == "sketch" or getattr(render_model, "draws_from_sketch", False):
            layout_model = _sketch_layout(render_model, render_ckpt, layout_ckpt, vessels, vessels_checkpoint,
                                          device_)
            layout_ckpt = Path(vessels_checkpoint)
        else:
            layout_model = load_layout_model(layout_ckpt, device_, compile=compile)
            if vessels != "gan" or vessels_checkpoint is not None:
                from retina.layout.vessels import load_vessel_source

                source = load_vessel_source(vessels, vessels_checkpoint, device_)
        return cls(layout_model, render_model, device_, layout_checkpoint=layout_ckpt, render_checkpoint=render_ckpt,
                   truncation=truncation, post_process=post_process, vessels=source)

    # -- what it is -----------------------------------------------------------------------------------------
    @property
    def generators(self) -> list[dict[str, Any]]:
        """The layout's and the renderer's records (checkpoint, sha256, training-set fingerprint), in that order."""
        return [dict(r) for r in self._generators]

    @property
    def res(self) -> int:
        """The resolution it draws at by default: the renderer's own, else 256."""
        return self.renderer.res or DEFAULT_RES

    @property
    def preview(self) -> bool:
        """True when any half is hand-written (procedural), not a learned model."""
        return bool(self._render_info["preview"]) or not self.layout.checkpoint_hash

    def _describe_layout(self, checkpoint: Path | None) -> dict[str, Any]:
        weights = None if checkpoint is None else checkpoint_paths(checkpoint)[0]
        info = {"name": self.layout.name, "checkpoint": None if weights is None else str(weights),
                "checkpoint_sha256": None if weights is None else file_sha256(weights),
                "channels": list(self.layout_channels), "truncation": self.truncation,
                "vessels": getattr(self.vessels, "kind", "sketch" if self.unconditional else "gan")}
        if self.vessels is not None:
            info["vessels_checkpoint"] = str(self.vessels.checkpoint_path)
            info["vessels_checkpoint_hash"] = self.vessels.checkpoint_hash
        if not self.layout.checkpoint_hash:
            info["note"] = "procedural layout prior (phantom drawing rules, not a learned model)"
        return info

    def provenance(self) -> dict[str, Any]:
        info = {"layout": dict(self._layout_info), "renderer": dict(self._render_info),
                "post_process": "one optic disc, solid field of view" if self.post_process else "none (--raw)",
                "preview": self.preview, "generators": [dict(r) for r in self._generators]}
        if self._render_info["preview"]:
            info["note"] = self._render_info["note"]
        return info

    def check_res(self, res: int | None) -> int:
        if res is None:
            return self.res
        if self.renderer.res is not None and self.renderer.res != res:
            raise RetinaError(f"--res {res}: the renderer {self.renderer.name} draws {self.renderer.res}px images; "
                              f"pass --res {self.renderer.res} or leave --res out")
        if res < 16:
            raise RetinaError(f"--res {res}: too small; use 16 or more (e.g. 256)")
        return int(res)

    # -- drawing --------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, grades: list[int], seeds: list[int], res: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Layouts then photographs for explicit per-sample ``seeds``: (masks, images, post-processed count)."""
        from retina.layout.post_process import clean_layout

        masks = self.layout.sample(list(grades), list(seeds), res, self.truncation)  # bool (B, C, res, res)
        if self.vessels is not None:
            masks = self.vessels.replace(masks, list(seeds))
        changed_total = 0
        if self.post_process:
            for j in range(len(masks)):
                masks[j], changed = clean_layout(masks[j], CHANNEL_NAMES, self.layout_channels)
                changed_total += int(changed)
        return masks, self.render(masks, grades, seeds), changed_total

    @torch.inference_mode()
    def render(self, masks: np.ndarray, grades: int | list[int], seeds: int | list[int] = 0) -> np.ndarray:
        """Photographs (uint8 (B, H, W, 3)) of mask stacks (B or no batch axis, NUM_CHANNELS, H, W).

        ``grades``/``seeds``: one for all or one per stack; a single seed S gives stack i ``sample_seed(S, i)``.
        """
        from retina.render.infer import images_to_uint8

        stacks = np.asarray(masks)
        single = stacks.ndim == 3
        stacks = stacks[None] if single else stacks
        if stacks.ndim != 4 or stacks.shape[1] != len(CHANNEL_NAMES):
            raise RetinaError(f"masks must be ({len(CHANNEL_NAMES)}, H, W) or (B, {len(CHANNEL_NAMES)}, H, W) in "
                              f"the order {', '.join(CHANNEL_NAMES)}; got {stacks.shape}")
        count = stacks.shape[0]
        grade_list = [grades] * count if isinstance(grades, (int, np.integer)) else list(grades)
        seed_list = [sample_seed(int(seeds), i) for i in range(count)] if isinstance(seeds, (int, np.integer)) \
            else [int(s) for s in seeds]
        if len(grade_list) != count or len(seed_list) != count:
            raise RetinaError(f"{count} mask stack(s) but {len(grade_list)} grade(s) and {len(seed_list)} seed(s)")
        grade_list = [parse_grade(g, "grade") for g in grade_list]
        binary = stacks > 0.5 if stacks.dtype.kind == "f" else stacks > 0
        model_input = torch.from_numpy(binary[:, self._render_rows].astype(np.float32))
        if self._absent:
            model_input[:, self._absent] = 0.0
        grade_tensor = torch.tensor(grade_list, dtype=torch.long, device=self.device)
        images = images_to_uint8(self.renderer.render(model_input.to(self.device), grade_tensor, seed_list))
        return images[0] if single else images

    def generate(self, grades: list[int] | int, seed: int = 0, res: int | None = None, start: int = 0) -> Batch:
        """Samples ``start .. start + len(grades) - 1`` of a generation with base ``seed``, in memory."""
        grade_list = [grades] if isinstance(grades, (int, np.integer)) else list(grades)
        if not grade_list:
            raise RetinaError("generate: give at least one grade")
        grade_list = [parse_grade(g, "grade") for g in grade_list]
        if int(seed) < 0:
            raise RetinaError(f"seed {seed}: seeds are whole numbers 0 or more")
        res = self.check_res(res)
        seeds = [sample_seed(int(seed), start + i) for i in range(len(grade_list))]
        masks, images, changed = self.sample(grade_list, seeds, res)
        provenance = {**self.provenance(), "seed": int(seed), "res": res,
                      "seed_rule": "sample_seed(seed, index); layout and renderer both use the sample's seed"}
        return Batch(images, masks, grade_list, seeds, provenance, changed)

    def save(self, batch: Batch, out: str | Path, *, overwrite: bool = False, start: int = 0) -> Path:
        """Write ``batch`` as a canonical data set (``retina generate``'s names, labels and provenance)."""
        from retina.common.canonical import CanonicalWriter
        from retina.render.generate import GENERATE_EXTRA_COLUMNS, sample_name

        total = start + len(batch)
        with CanonicalWriter(out, resolution=batch.images.shape[1], provenance={"command": "Pipeline.save",
                                                                                 **batch.provenance},
                             extra_columns=GENERATE_EXTRA_COLUMNS, overwrite=overwrite) as writer:
            for j in range(len(batch)):
                self.add_sample(writer, sample_name(start + j, total), start + j, batch.images[j], batch.masks[j],
                                batch.grades[j], batch.seeds[j])
        return Path(out)

    def add_sample(self, writer: Any, name: str, index: int, image: np.ndarray, masks: np.ndarray,
                   grade: int | None, seed: int) -> None:
        """One generated sample into a :class:`~retina.common.canonical.CanonicalWriter` (labels as generate's)."""
        grade = None if self.unconditional else grade
        writer.add(
            name, image=image, masks={c: masks[CHANNEL_NAMES.index(c)] for c in self.layout_channels},
            grade=grade, split="train", source=f"generate:{self.layout.name}+{self.renderer.name}", index=index,
            seed=seed, model=self.renderer.name, checkpoint=self.renderer.checkpoint_hash or "",
            layout_model=self.layout.name, layout_checkpoint=self.layout.checkpoint_hash or "",
            png_text=synthetic_png_text(grade, f"{self.layout.name}+{self.renderer.name}", seed),
        )


def _sketch_layout(renderer: Any, render_ckpt: Path | None, layout_ckpt: Path | None, vessels: str,
                   vessels_checkpoint: str | Path | None, device: torch.device) -> Any:
    """SkrGAN (``vessels="sketch"`` with its colour renderer): the sketch generator replaces the layout model."""
    if vessels != "sketch":
        raise RetinaError(f"{render_ckpt}: SkrGAN's colour renderer draws from sketches; pass --vessels sketch "
                          "--vessels-checkpoint RUN (from `retina layout train-sketch`)")
    if not getattr(renderer, "draws_from_sketch", False):
        raise RetinaError("--vessels sketch renders with SkrGAN's colour renderer: pass --renderer RUN from "
                          "`retina render train-sketch`")
    if vessels_checkpoint is None:
        raise RetinaError("--vessels sketch needs --vessels-checkpoint RUN from `retina layout train-sketch`")
    if layout_ckpt is not None:
        raise RetinaError("--layout with --vessels sketch: SkrGAN is unconditional (sketch, then colour), it "
                          "draws no lesions; drop --layout")
    from retina.layout.sketch_gan import SketchLayout

    return SketchLayout(vessels_checkpoint, device)
