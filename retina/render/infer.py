"""Rendering a folder of mask sets (``retina render --masks DIR``) into a new canonical data set.

The output holds the rendered photographs next to copies of the masks they were rendered from, so it is
itself a canonical data set that every other command reads. Decisions a user should know:

* **Channels**: the folder must have every mask channel the renderer needs; otherwise a one-line error names
  the folder and the missing channels before anything is written. (The procedural renderer treats an
  absent lesion folder as "no lesion of that kind"; learned renderers never get silent zeros.)
* **Size**: masks of another size than the renderer's resolution are *resized with max-pooling* (a 3-pixel
  microaneurysm survives a 4x reduction) and a warning says how many; the mask copies are written at the
  rendered resolution so image and masks stay aligned pixel for pixel.
* **Grade**: from ``labels.csv``; for rows without one, ``--grade``; otherwise the renderer predicts it
  (DR-GAN III-E). The ``grade_source`` column says which.
* **Seeds**: sample *i* (row order of ``labels.csv``) uses ``sample_seed(seed, i)``, independent of batch size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retina.common.canonical import CanonicalDataset, CanonicalWriter, Sample
from retina.common.checkpoint import checkpoint_paths, file_sha256, missing_checkpoint
from retina.common.dataset import resize_masks
from retina.common.errors import RetinaError
from retina.common.fingerprint import generator_record
from retina.common.progress import console, progress_bar, summary
from retina.common.provenance import synthetic_png_text
from retina.common.seeding import sample_seed
from retina.render.procedural import ProceduralRenderer
from retina.shipped import describe

LABEL_EXTRA_COLUMNS = ("seed", "model", "checkpoint", "grade_source")


def open_renderer(checkpoint: str | Path | None, device: torch.device, amp: bool = False,
                  channels_last: bool = True, compile: bool = False) -> Any:
    """The learned renderer in ``checkpoint``, or the procedural preview renderer when none is given."""
    if checkpoint is None:
        return ProceduralRenderer()
    weights, _ = checkpoint_paths(checkpoint)  # refuses pickles before anything is imported
    if not weights.is_file():
        raise missing_checkpoint(checkpoint, weights, "train one with `retina render train`")
    from retina.common.checkpoint import Checkpoint
    from retina.render.skrgan import SketchRenderer, is_colour_renderer, load_colour_renderer

    if is_colour_renderer(Checkpoint(checkpoint)):  # SkrGAN's colour render mapping (retina render train-sketch)
        model, loaded = load_colour_renderer(checkpoint, device)
        return SketchRenderer(model, device, loaded.short_hash, channels_last=channels_last)
    from retina.render.model import load_renderer

    return load_renderer(checkpoint, device, amp=amp, channels_last=channels_last, compile=compile)


def renderer_info(renderer: Any, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """What a data set's retina.json records about the model that drew its images."""
    preview = bool(getattr(renderer, "preview", False))
    info = {
        "name": renderer.name,
        "checkpoint": None if checkpoint is None else str(checkpoint_paths(checkpoint)[0]),
        "checkpoint_sha256": None if checkpoint is None else file_sha256(checkpoint_paths(checkpoint)[0]),
        "res": renderer.res,
        "channels": list(renderer.channels),
        "preview": preview,
    }
    if preview:
        info["note"] = renderer.note
    return info


def images_to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    scaled = ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).numpy()


def _batches(rows: list[tuple[int, Sample, int | None]], size: int) -> Iterator[list[tuple[int, Sample, int | None]]]:
    """Consecutive rows in batches of ``size``; a batch never mixes rows with and without a grade."""
    batch: list[tuple[int, Sample, int | None]] = []
    for row in rows:
        if batch and (len(batch) == size or (batch[-1][2] is None) != (row[2] is None)):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def render_folder(
    masks_dir: str | Path,
    out: str | Path,
    renderer: Any,
    grade: int | None = None,
    seed: int = 0,
    batch: int = 4,
    device: torch.device | str = "cpu",
    overwrite: bool = False,
    show_progress: bool = True,
    checkpoint: str | Path | None = None,
    splits: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Render every mask set of the canonical folder ``masks_dir`` into the canonical set ``out``.

    ``checkpoint``: the file ``renderer`` was loaded from, recorded (with its sha256) in retina.json.
    ``splits``: only the rows of these splits (e.g. ``("test",)``); seeds still follow each row's index in the
    whole labels.csv, so a subset renders exactly as those rows do in a full render.
    """
    if batch < 1:
        raise RetinaError(f"--batch {batch}: must be at least 1")
    device = torch.device(device)
    source = CanonicalDataset(masks_dir)
    out = Path(out)
    if out.resolve() == source.root.resolve():
        raise RetinaError(f"{out}: --out must differ from --masks (the mask folder is read, never overwritten)")
    optional = set(getattr(renderer, "optional_channels", ()))
    source.require_channels([c for c in renderer.channels if c not in optional], f"the {renderer.name} renderer")
    copied = source.channels  # every mask channel present is copied, used by the renderer or not
    filled = [c for c in renderer.channels if c not in copied]

    res = renderer.res or source.resolution or int(source.load_masks(source.samples[0].name, copied).shape[-1])
    rows = []
    for index, sample in enumerate(source.samples):
        if splits is not None and sample.split not in splits:
            continue
        if sample.grade is not None:
            rows.append((index, sample, sample.grade))
        else:
            rows.append((index, sample, grade))
    if not rows:
        raise RetinaError(f"--split {','.join(splits or ())}: {source.root}/labels.csv has no such rows; its splits "
                          f"are {', '.join(sorted({s.split for s in source.samples}))}")
    predict = getattr(renderer, "predict_grades", None)
    ignored_grade = grade is not None and sum(s.grade is not None for s in source.samples)
    if ignored_grade:
        console.print(f"note: --grade {grade} applies only to rows without a grade; {ignored_grade} row(s) of "
                      f"{source.root}/labels.csv keep their own")
    if filled:
        console.print(f"note: {source.root} has no masks/{'|'.join(filled)}; the {renderer.name} renderer draws "
                      "no lesion of those kinds")

    info = renderer_info(renderer, checkpoint)
    provenance = {
        "command": "render",
        "masks": str(source.root),
        "renderer": info,
        "seed": seed,
        "seed_rule": "sample_seed(seed, row index in the mask folder's labels.csv)",
        "grade_option": grade,
        "splits": list(splits) if splits is not None else "all",
        "preview": info["preview"],
        "generators": [generator_record("renderer", renderer.name, checkpoint,
                                                   learned=bool(getattr(renderer, "checkpoint_hash", "")))],
        "masks_provenance": source.info.get("provenance", {}),  # the layout model that drew them, if any
    }
    resized = 0
    start = time.perf_counter()
    with CanonicalWriter(out, resolution=res, provenance=provenance, extra_columns=LABEL_EXTRA_COLUMNS,
                         overwrite=overwrite) as writer:
        with progress_bar(len(rows), f"render {renderer.name}", enabled=show_progress) as bar, \
                torch.inference_mode():
            for chunk in _batches(rows, batch):
                stacks = []
                for _, sample, _ in chunk:
                    stack = torch.from_numpy(source.load_masks(sample.name, copied).astype(np.float32))
                    if stack.shape[-2:] != (res, res):
                        resized += 1
                        stack = resize_masks(stack, res)
                    stacks.append(stack)
                masks = torch.stack(stacks)
                model_input = torch.zeros(len(chunk), len(renderer.channels), res, res)
                for i, channel in enumerate(renderer.channels):
                    if channel in copied:
                        model_input[:, i] = masks[:, copied.index(channel)]
                model_input = model_input.to(device)
                known = [g for _, _, g in chunk]
                if known[0] is not None:
                    grades = torch.tensor(known, dtype=torch.long, device=device)
                    origins = ["label" if s.grade is not None else "option" for _, s, _ in chunk]
                elif predict is not None:
                    grades = predict(model_input).to(device)
                    origins = ["predicted"] * len(chunk)
                else:
                    grades = None
                    origins = ["model"] * len(chunk)
                seeds = [sample_seed(seed, index) for index, _, _ in chunk]
                images = images_to_uint8(renderer.render(model_input, grades, seeds))
                binary = masks.numpy() > 0.5
                for j, (_, sample, _) in enumerate(chunk):
                    writer.add(
                        sample.name, image=images[j],
                        masks={c: binary[j, k] for k, c in enumerate(copied)},
                        grade=None if grades is None else int(grades[j]), split=sample.split,
                        source=f"render:{renderer.name}", seed=seeds[j], model=renderer.name,
                        checkpoint=renderer.checkpoint_hash or "", grade_source=origins[j],
                        png_text=synthetic_png_text(None if grades is None else int(grades[j]), renderer.name,
                                                    seeds[j]),
                    )
                bar.advance(len(chunk))
                del masks, model_input, images, binary, stacks
    if resized:
        console.print(f"warning: {resized} mask set(s) of {source.root} were not {res}x{res}; resized with "
                      "max-pooling (tiny lesions kept) and copied at the rendered size")
    elapsed = time.perf_counter() - start
    kind = f" — {renderer.note}" if info["preview"] else f" ({describe(info['checkpoint'])})"
    summary(f"rendered {len(rows)} image(s) at {res}px with {renderer.name}{kind} in {elapsed:.1f}s "
            f"({len(rows) / max(elapsed, 1e-9):.2f} img/s) -> {out}")
    return {"count": len(rows), "res": res, "resized": resized, "seconds": elapsed, "out": str(out)}
