"""``retina generate``: layout then render in one streaming pass into a balanced, labelled canonical data set.

Memory stays constant in N: each batch is sampled, rendered, written and dropped before the next one.
Large runs split by index: ``--shard i/n`` takes the contiguous global index block
``[N*i//n, N*(i+1)//n)``. A sample's name (``gen_000123``), grade (``grades[index % len(grades)]``) and seed
(``sample_seed(seed, index)``) come from its *global* index, so shards made on different machines merge with
no duplicate names or seeds and their union equals the unsharded run. Under ``torchrun`` each rank takes
shard ``rank/world`` by itself and writes ``OUT/shard-RANK-of-WORLD``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from retina.common.canonical import CanonicalWriter
from retina.common.errors import RetinaError, parse_grades
from retina.common.memory import require_memory, sampling_bytes
from retina.common.progress import progress_bar, summary
from retina.common.seeding import sample_seed
from retina.pipeline import Pipeline

DEFAULT_RES = 256
MIN_RES = 16  # the procedural layout prior's smallest field of view
GENERATE_EXTRA_COLUMNS = ("index", "seed", "model", "checkpoint", "layout_model", "layout_checkpoint")


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n; ``None`` -> ``(0, 1)``."""
    if spec is None or spec.strip() == "":
        return 0, 1
    try:
        index_text, count_text = spec.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise RetinaError(f"--shard '{spec}': write it as i/n, e.g. 0/4 for the first of four shards") from None
    if count < 1 or not 0 <= index < count:
        raise RetinaError(f"--shard '{spec}': needs 0 <= i < n (shards are numbered from 0)")
    return index, count


def shard_range(n: int, index: int, count: int) -> range:
    """The global indices of shard ``index`` of ``count``: contiguous, disjoint, covering ``range(n)``."""
    return range(n * index // count, n * (index + 1) // count)


def sample_name(index: int, n: int) -> str:
    return f"gen_{index:0{max(6, len(str(n - 1)))}d}"


def generate_dataset(
    out: str | Path,
    n: int,
    grades: str = "uniform",
    layout_ckpt: str | Path | None = None,
    render_ckpt: str | Path | None = None,
    seed: int = 0,
    res: int | None = None,
    batch: int = 8,
    shard: str | None = None,
    device: torch.device | str = "cpu",
    amp: bool = False,
    truncation: float = 1.0,
    channels_last: bool = True,
    compile: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    show_progress: bool = True,
    post_process: bool = True,
    vessels: str = "gan",
    vessels_checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Write shard ``shard`` of an ``n``-sample generation to ``out``; returns counts for the caller.
    ``post_process``: layouts get one optic disc and a solid field of view before rendering (as in
    `retina layout sample`; each step only for the channels the layout model draws). ``vessels``: as in
    `retina layout sample`; ``sketch`` (SkrGAN) draws a sketch with the sketch generator in
    ``vessels_checkpoint`` and renders it with the colour renderer ``render_ckpt``: no layout model, no lesions,
    no grades."""
    if n < 1:
        raise RetinaError(f"--n {n}: must be at least 1")
    if batch < 1:
        raise RetinaError(f"--batch {batch}: must be at least 1")
    if res is not None and res < MIN_RES:
        raise RetinaError(f"--res {res}: too small to draw a fundus; use --res {MIN_RES} or more (e.g. 256)")
    grade_cycle = parse_grades(grades, option="--grades")
    device = torch.device(device)
    out = Path(out)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if shard is not None:
            raise RetinaError("--shard and torchrun together: torchrun already gives each rank its shard; drop --shard")
        shard_index, shard_count = rank, world
        out = out / f"shard-{rank}-of-{world}"
    else:
        shard_index, shard_count = parse_shard(shard)
    indices = shard_range(n, shard_index, shard_count)

    pipe = Pipeline.load(layout_ckpt, render_ckpt, str(device), amp=amp, channels_last=channels_last,
                         compile=compile, truncation=truncation, post_process=post_process, vessels=vessels,
                         vessels_checkpoint=vessels_checkpoint)
    res = pipe.check_res(res)
    layout, renderer = pipe.layout, pipe.renderer
    seen = getattr(renderer, "seen_grades", None)
    unseen = sorted(set(grade_cycle) - set(seen)) if seen else []
    if unseen and show_progress:
        from retina.common.progress import console

        console.print(f"note: the renderer was trained on grade(s) {', '.join(map(str, seen))} only; grade(s) "
                      f"{', '.join(map(str, unseen))} are outside its training data (their images are less reliable)")
    require_memory(sampling_bytes(min(batch, len(indices)), res), sampling_bytes(1, res), "generating",
                   min(batch, len(indices)), res, device="cpu")
    provenance = {
        "command": "generate",
        **pipe.provenance(),
        "seed": seed,
        "seed_rule": "sample_seed(seed, global index); layout and renderer both use the sample's seed",
        "grades": grades,
        "grade_rule": "none: SkrGAN is unconditional" if pipe.unconditional else
                      f"grade of global index i = {grade_cycle}[i % {len(grade_cycle)}]",
        "n_total": n,
        "shard": f"{shard_index}/{shard_count}",
        "index_range": [indices.start, indices.stop],
        "res": res,
    }
    render = provenance["renderer"]
    counts: Counter = Counter()
    post_processed = 0
    start = time.perf_counter()
    # What decides the images: a --resume with other values would mix two data sets under one retina.json.
    options = {"--n": n, "--grades": grades, "--seed": seed, "--res": res, "--shard": f"{shard_index}/{shard_count}",
               "--layout": provenance["layout"].get("checkpoint_sha256"),
               "--renderer": render.get("checkpoint_sha256"),
               "--truncation": truncation, "--amp": amp, "--single-od/--raw": post_process}
    with CanonicalWriter(out, resolution=res, provenance=provenance, extra_columns=GENERATE_EXTRA_COLUMNS,
                         overwrite=overwrite, resume=resume, options=options) as writer:
        # After a killed run, --resume keeps the samples already in OUT.partial: per-sample seeds make the
        # remaining ones exactly what the uninterrupted run would have written.
        todo = [i for i in indices if sample_name(i, n) not in writer.done]
        with progress_bar(len(indices), "generate", enabled=show_progress and rank == 0) as bar, \
                torch.inference_mode():
            bar.advance(len(indices) - len(todo))
            for first in range(0, len(todo), batch):
                block = todo[first:first + batch]
                grade_list = [grade_cycle[i % len(grade_cycle)] for i in block]
                seeds = [sample_seed(seed, i) for i in block]
                masks, images, changed = pipe.sample(grade_list, seeds, res)
                post_processed += changed
                for j, index in enumerate(block):
                    pipe.add_sample(writer, sample_name(index, n), index, images[j], masks[j], grade_list[j],
                                    seeds[j])
                    counts["ungraded" if pipe.unconditional else grade_list[j]] += 1
                bar.advance(len(block))
                del masks, images  # constant memory in N: nothing of a batch outlives it
    elapsed = time.perf_counter() - start
    from retina.shipped import describe

    kind = f" — {render['note']}" if render["preview"] else ""
    which = [describe(g.get("checkpoint")) for g in pipe.generators]
    balance = " ".join(f"{g}:{counts[g]}" for g in sorted(counts, key=str))
    resumed = f", {len(indices) - len(todo)} kept from an interrupted run" if len(todo) < len(indices) else ""
    fixed = f", {post_processed} layout(s) post-processed" if post_process else ""
    summary(f"generated {len(todo)} image(s){resumed} (shard {shard_index}/{shard_count}, grades {balance}{fixed}) "
            f"at {res}px with layout {layout.name} ({which[0]}) + renderer {renderer.name} ({which[1]}){kind} in "
            f"{elapsed:.1f}s -> {out}",
            enabled=True)
    return {"count": len(todo), "kept": len(indices) - len(todo), "grades": dict(counts), "out": str(out),
            "seconds": elapsed, "post_processed": post_processed}
