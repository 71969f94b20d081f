"""Training loop of the renderers (``retina render train``): DR-GAN coarse then fine, or SPADE.

Order of work in a fresh DR-GAN run: train the grading network on the real training images' grades (early
stopping on held-out grades; or reuse the one trained before on the same images, retina/render/grader_cache.py),
fit the per-grade Gaussians of its pooled features (III-D), then alternate discriminator and generator steps
with the multi-task loss of eq. 1. The coarse stage trains G_m at res/2; the fine stage starts from a coarse
run (``--init``; ``--from-scratch`` only when asked for), adds G_l and fine-tunes the whole at res. The run
folder holds sample grids (masks | real | fake, of val rows when there are any), ``last``/``best``
checkpoints (best = lowest FD-EffNetLite0 of renders of the split=val masks against their photographs,
retina/render/selection.py), and ``log.jsonl`` (losses, the val curve, the grader's scores); ``--resume RUN``
restores weights, EMA, optimisers, RNG, step and stage and trains on to the saved total or to a larger
``--steps``.

Under torchrun (DistributedDataParallel, gloo on CPU) the global batch ``--batch`` is split evenly over the
ranks, and a run gives what one process with the same global batch gives: a DistributedSampler (one
replica in a single process) puts the same images in each global batch; every sample's grading vector and
noise come from its own generator seeded by (run seed, its position in the stream of samples), never by
rank; DDP averages per-rank mean losses over equal per-rank batches, and the focal grade losses, means over
the samples whose grade is known, are reweighted by the rank's share of known grades; logged losses are
averaged over ranks. One difference remains on CPU: DR-GAN's BatchNorm normalises with per-rank batch
statistics there, because torch's SyncBatchNorm runs only on GPUs (it refuses CPU tensors in torch 2.14);
on CUDA it is converted to SyncBatchNorm. SPADE (instance norm) matches to float rounding.
"""

from __future__ import annotations

import copy
import math
import shutil
from collections.abc import Collection
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from retina.common.canonical import CanonicalDataset, Sample
from retina.common.checkpoint import Checkpoint, load_module, module_tensors, rng_state, set_rng_state
from retina.common.dataset import FundusDataset, resize_image, resize_masks
from retina.common.device import resolve_device
from retina.common.distributed import DistributedContext, all_reduce_mean, init_distributed, local_device, shutdown
from retina.common.errors import RetinaError
from retina.common.fingerprint import fingerprint, fingerprint_reference
from retina.common.imageio import atomic_path, write_png
from retina.common.interrupt import checkpointed_steps
from retina.common.progress import progress_bar, summary
from retina.common.run import RunFolder
from retina.common.sampler import ResumableSampler
from retina.common.schema import CHANNEL_NAMES, CHANNELS
from retina.common.seeding import sample_seed, seed_everything, torch_generator
from retina.common.split import training_rows
from retina.render.config import STRUCTURAL_CHANNELS, RenderConfig
from retina.render.discriminator import DOutput, build_discriminator
from retina.render.grader_cache import cache_path, images_fingerprint, load_grader, save_grader
from retina.render.grading import (
    PRETRAINED,
    GradingSpace,
    build_grader,
    grader_features,
    resolve_grader_arch,
    train_grader,
)
from retina.render.losses import adversarial_loss, build_perceptual, feature_matching_loss, focal_loss
from retina.render.model import build_generator, build_space
from retina.render.selection import HeldOutSelection


def choose_channels(index: CanonicalDataset, config: RenderConfig) -> tuple[str, ...]:
    """The data set's channels in schema order; only the structural ones for --no-lesion-masks."""
    available = [c for c in CHANNEL_NAMES if c in index.channels]
    if not config.lesion_masks:
        available = [c for c in available if c in STRUCTURAL_CHANNELS]
    if not available:
        raise RetinaError(f"{index.root}: no mask channels to condition the renderer on")
    return tuple(available)


def mask_preview(masks: torch.Tensor, channels: tuple[str, ...]) -> torch.Tensor:
    """Colour a mask stack (B, C, H, W) with the schema's preview colours -> (B, 3, H, W) in [0, 1]."""
    colours = {c.name: c.color for c in CHANNELS}
    out = torch.zeros(masks.shape[0], 3, *masks.shape[-2:])
    for i, name in enumerate(channels):
        if name == "fov":
            continue
        colour = torch.tensor(colours[name], dtype=torch.float32)[None, :, None, None] / 255
        plane = masks[:, i : i + 1].cpu()
        out = out * (1 - plane) + colour * plane
    return out


def split_outputs(outputs: list[DOutput], n: int) -> tuple[list[DOutput], list[DOutput]]:
    """Outputs of D on cat([real, fake]) -> (real outputs, fake outputs)."""
    def part(o: DOutput, s: slice) -> DOutput:
        logits = None if o.grade_logits is None else o.grade_logits[s]
        return DOutput([f[s] for f in o.features], o.score[s], logits)
    return [part(o, slice(0, n)) for o in outputs], [part(o, slice(n, None)) for o in outputs]


def _held_out_grades(index: CanonicalDataset, train: FundusDataset, data: Path, res: int, seed: int):
    """(grader training set, held-out set or None, what is held out) for the grader's early stopping: the graded
    split=val rows; without two of them, every fifth graded training row (drawn by ``seed``), kept out of its
    training; with fewer than five graded training rows, nothing (it trains to the cap)."""
    from torch.utils.data import Subset

    graded_val = [s for s in index.subset("val") if s.grade is not None]
    if len(graded_val) >= 2:
        val = FundusDataset(index, res, (), split="val", with_masks=False)
        return train, val, f"{len(graded_val)} graded split=val rows"
    graded = [i for i, s in enumerate(train.samples) if s.grade is not None]
    if len(graded) < 5:
        return train, None, "nothing (fewer than 2 graded val rows and 5 graded training rows)"
    order = torch.randperm(len(graded), generator=torch.Generator().manual_seed(seed)).tolist()
    held = sorted(graded[i] for i in order[: len(graded) // 5])
    kept = [i for i in range(len(train)) if i not in set(held)]
    return Subset(train, kept), Subset(train, held), f"{len(held)} of the graded training rows (no split=val grades)"


def fit_grading_space(index: CanonicalDataset, data: Path, rows: list[Sample], config: RenderConfig,
                      device: torch.device, weights_dir: str | Path | None, grader_ckpt: str | Path | None,
                      enabled_log: bool) -> tuple[GradingSpace | None, dict]:
    """III-D: a grading network trained on the real training grades (early stopping on held-out grades; reused
    from ``--grader-checkpoint`` or the cache when trained before), then one Gaussian per grade of its features.
    Returns the space (None: fewer than 2 graded images) and what was done, for the run config and log."""
    train = FundusDataset(index, min(config.grader_res, config.res), (), with_masks=False, samples=rows)
    grades = torch.tensor([-1 if s.grade is None else s.grade for s in train.samples])
    if (grades >= 0).sum() < 2:
        summary("adaptive grading manipulation OFF: the data set has fewer than 2 graded images", enabled_log)
        return None, {"arch": None, "reason": "fewer than 2 graded training images"}
    if grader_ckpt is not None:
        grader, info = load_grader(grader_ckpt)
        if config.grader_arch not in ("auto", grader.arch):
            raise RetinaError(f"--grader {config.grader_arch} conflicts with --grader-checkpoint {grader_ckpt} "
                              f"(a {grader.arch} grader); drop one")
        info["source"], reason = "--grader-checkpoint", f"--grader-checkpoint {grader_ckpt}"
        if info.get("res", train.size) != train.size:  # its features are read at the size it was trained at
            train = FundusDataset(index, int(info["res"]), (), with_masks=False, samples=rows)
    else:
        arch, reason = resolve_grader_arch(config.grader_arch, weights_dir)
        fit_set, held_out, held_note = _held_out_grades(index, train, data, train.size, config.seed)
        settings = {"arch": arch, "res": train.size, "steps": config.grader_steps, "lr": config.grader_lr,
                    "eval_every": config.grader_eval_every, "patience": config.grader_patience,
                    "batch": min(config.batch, len(fit_set)), "seed": config.seed, "held_out": held_note}
        val_samples = index.subset("val") if held_out is not None and not isinstance(held_out, Subset) else []
        images_key = images_fingerprint(index, [*train.samples, *val_samples])
        cached = cache_path(images_key, settings)
        if cached.is_file():
            grader, info = load_grader(cached)
            info["source"] = "cache"
        else:
            grader = build_grader(arch, weights_dir).to(device)
            loader = DataLoader(fit_set, batch_size=settings["batch"], shuffle=True, drop_last=True)
            val_loader = DataLoader(held_out, batch_size=32) if held_out is not None else None
            with progress_bar(config.grader_steps, f"grading net ({arch})", enabled_log) as bar:
                report = train_grader(grader, loader, val_loader, config.grader_steps, config.grader_eval_every,
                                      config.grader_patience, config.grader_lr, device, bar)
            info = {**settings, **report, "weights": PRETRAINED[arch], "images_fingerprint": images_key}
            if enabled_log:
                save_grader(cached, grader, info)
            info = {**info, "checkpoint": str(cached), "source": "trained"}
    grader = grader.to(device).eval()
    config.grader_arch = grader.arch
    features, labels = [], []
    with torch.no_grad():
        for batch in DataLoader(train, batch_size=min(32, len(train))):
            features.append(grader_features(grader, batch["image"].to(device)).cpu())
            labels.append(batch["grade"])
    space = GradingSpace(grader.dim, config.covariance_rank, config.covariance == "diag")
    space.fit(torch.cat(features), torch.cat(labels))
    info = {k: v for k, v in info.items() if k not in ("kind", "dim", "curve")}
    info["separation"] = space.separation(seed=config.seed)
    info["weights"] = PRETRAINED[grader.arch]
    accuracy = info.get("val_accuracy")
    kappa = info.get("val_kappa")
    held = (f"val accuracy {accuracy:.3f}, quadratic kappa {'n/a' if kappa is None else f'{kappa:.3f}'} on "
            f"{info.get('held_out')}, stopped {info.get('stopped')} at step {info.get('best_step')} of "
            f"{info.get('steps')}" if accuracy is not None else "no held-out grades: trained to the cap")
    separation = info["separation"]
    separated = ("n/a" if separation["ncm_accuracy"] is None
                 else f"{separation['ncm_accuracy']:.3f} (chance {separation['chance']:.3f})")
    summary(f"grading network: {grader.arch} from {info['weights']} ({reason}; {info['source']}); {held}; "
            f"per-grade Gaussians' nearest-mean accuracy {separated}", enabled_log)
    return space.to(device), info


def caption_rows(picture: np.ndarray, grades: list[int], size: int) -> np.ndarray:
    """Write each row's grade on its mask tile and 'real' / 'render' on the first row's photographs (the grid of
    make_grid with padding 1, three columns)."""
    from retina.common.captions import caption

    def place(row: int, column: int, text: str, short: str) -> None:
        y, x = 1 + row * (size + 1), 1 + column * (size + 1)
        picture[y:y + size, x:x + size] = caption(picture[y:y + size, x:x + size], text, short)

    for row, grade in enumerate(grades):
        place(row, 0, "grade ?" if grade < 0 else f"grade {grade}", "?" if grade < 0 else f"g{grade}")
    place(0, 1, "real", "real")
    place(0, 2, "render", "fake")
    return picture


def sampling_grades(grades: torch.Tensor, space: GradingSpace, generators: list[torch.Generator]) -> torch.Tensor:
    """Unknown grades (-1) draw a grade with the training set's frequencies, each from its sample's generator."""
    grades = grades.clone()
    weights = space.count.float() + 1e-3
    for i in (grades < 0).nonzero().flatten().tolist():
        grades[i] = torch.multinomial(weights.to(generators[i].device), 1, generator=generators[i])[0]
    return grades


def known_grade_weight(grades: torch.Tensor, context: DistributedContext) -> float:
    """Factor for a mean over this rank's known grades such that DDP's mean over ranks is the mean over the
    global batch's known grades (ranks may hold different numbers of graded images)."""
    known = float((grades >= 0).sum())
    if not context.enabled:
        return 1.0
    mean_known = float(all_reduce_mean(torch.tensor(known, device=grades.device), context))
    return known / mean_known if mean_known > 0 else 0.0


def resumed_config(previous: Checkpoint, steps: int, run: Path) -> RenderConfig:
    """The saved run's config, trained to ``steps`` (0: the saved total), which must exceed the steps done."""
    saved = RenderConfig.from_dict(previous.config)
    done = int(previous.state["step"])
    saved.steps = steps or saved.steps
    if saved.steps <= done:
        raise RetinaError(f"{run} has already trained {done} steps; pass --steps larger than {done} to continue")
    return saved


# what the fine stage takes from the coarse run it starts from (--init), with the option that sets each
CARRIED_FROM_COARSE = {"width": "--width", "channels": None, "sca": "--no-sca", "agm": "--no-agm",
                       "residual_blocks": None, "grader_arch": "--grader", "covariance": None, "covariance_rank": None,
                       "style_dim": None, "mapping_layers": None, "lesion_masks": "--no-lesion-masks",
                       "upsample": "--upsample", "synthesis_order": None, "sca_max_grid": None,
                       "sca_channel_energy": None}


def init_conflicts(config: RenderConfig, coarse: RenderConfig, explicit: Collection[str]) -> list[str]:
    """Options the caller set (``explicit`` config keys) that differ from the coarse run's, as ``--opt (here vs
    coarse)``: the fine stage would silently replace them."""
    conflicts = []
    for key, option in CARRIED_FROM_COARSE.items():
        mine, theirs = getattr(config, key), getattr(coarse, key)
        if key not in explicit or mine == theirs or (key == "grader_arch" and mine == "auto"):
            continue
        conflicts.append(f"{option or key} ({mine} here, {theirs} in the coarse run)")
    return conflicts


def train_renderer(data: str | Path, out: str | Path, config: RenderConfig, device: str = "auto",
                   init: str | Path | None = None, resume: bool = False,
                   weights_dir: str | Path | None = None, grader_ckpt: str | Path | None = None,
                   explicit: Collection[str] = ()) -> Path:
    """Train (or resume) a renderer; returns the run folder. See the module docstring. ``explicit``: the config
    keys the caller set on purpose (the CLI's given options), refused when ``init`` would override them."""
    base_device = resolve_device(device)
    context = init_distributed(base_device)
    device = local_device(base_device, context)
    try:
        run = _train(Path(data), Path(out), config, device, context, init, resume, weights_dir, grader_ckpt,
                     frozenset(explicit))
    except BaseException:
        shutdown(context)
        raise
    shutdown(context, finished=True)
    return run


def _train(data, out, config, device, context, init, resume, weights_dir, grader_ckpt, explicit) -> Path:
    is_main = context.is_main
    previous = None
    if resume:
        previous = Checkpoint(out / "last.safetensors").expect("render")
        config = resumed_config(previous, config.steps, out)
    elif config.arch == "drgan" and config.stage == "fine" and init is None and not config.from_scratch:
        raise RetinaError("--stage fine starts from a coarse run: train --stage coarse first and pass --init "
                          "COARSE_RUN, or add --from-scratch to train G_m and G_l together from random weights")
    if init is not None and config.from_scratch:
        raise RetinaError("--from-scratch and --init contradict each other: drop one")
    world = context.world_size
    if config.batch % world:
        raise RetinaError(f"--batch {config.batch} is not divisible by the {world} processes")
    seed_everything(config.seed)  # the same on every rank: same grading space, same initial weights
    index = CanonicalDataset(data)
    source = Checkpoint(init).expect("render", "drgan") if init is not None else None
    if source is not None:
        if config.arch != "drgan" or config.stage != "fine":
            raise RetinaError("--init starts the DR-GAN fine stage from a coarse run: use --arch drgan --stage fine")
        coarse = RenderConfig.from_dict(source.config)
        if coarse.res != config.res:
            raise RetinaError(f"{source.path}: trained for --res {coarse.res}, not {config.res}; use the same --res")
        conflicts = init_conflicts(config, coarse, explicit)
        if conflicts:
            raise RetinaError(f"--init {init}: the fine stage takes these from the coarse run and they differ: "
                              f"{', '.join(conflicts)}; drop them or train a coarse run with them")
        for key in CARRIED_FROM_COARSE:
            setattr(config, key, getattr(coarse, key))
    elif previous is None:
        config.channels = choose_channels(index, config)
    config.channels = tuple(config.channels)
    size = config.res if config.arch == "spade" or config.stage == "fine" else config.res // 2
    train_rows = training_rows(index, "render training", is_main)  # split=train only (retina.common.split)
    dataset = FundusDataset(index, config.res, config.channels, augment=None, samples=train_rows)
    training_set = fingerprint([(index, train_rows)])
    local_batch = min(config.batch, len(dataset)) // world
    if local_batch < 1:
        raise RetinaError(f"{data}: {len(dataset)} training images cannot be split over {world} processes")

    # grading space: from the checkpoint we continue, or fitted now
    grading_dim = 0
    space: GradingSpace | None = None
    grader_info: dict | None = None
    if config.arch == "drgan" and config.agm:
        carried = previous or source
        if carried is not None:
            grading_dim = int(carried.config.get("grading_dim", 0))
            grader_info = carried.config.get("grader")
            space = build_space(config, grading_dim)
            if space is not None:
                load_module(space, carried.submodule("space"), carried.path)
                space = space.to(device)
        else:
            # its own random stream: a grader from the cache must leave the GAN's initial weights unchanged
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                space, grader_info = fit_grading_space(index, data, train_rows, config, device, weights_dir,
                                                       grader_ckpt, is_main)
            grading_dim = space.dim if space is not None else 0
            if space is not None and context.enabled:  # every rank fitted the same space; guard against drift
                for buffer in space.buffers():
                    torch.distributed.broadcast(buffer, src=0)
    generator = build_generator(config, grading_dim).to(device)
    discriminator = build_discriminator(config).to(device)
    if source is not None:
        # G_m and D carry over from the coarse stage; G_l starts fresh
        try:
            result = generator.load_state_dict(source.submodule("g_ema") or source.submodule("g"), strict=False)
            misfit = result.unexpected_keys or any(not k.startswith("local_") for k in result.missing_keys)
        except RuntimeError:  # shape mismatch
            misfit = True
        if misfit:
            raise RetinaError(f"{source.path}: weights do not fit this generator; was it a coarse DR-GAN run?")
        load_module(discriminator, source.submodule("d"), source.path)
    if context.enabled and device.type == "cuda":  # global batch statistics (CPU: per rank, module docstring)
        generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
    if config.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(generator).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=config.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas)
    step, best = 0, math.inf
    if previous is not None:
        load_module(generator, previous.submodule("g"), previous.path)
        load_module(ema, previous.submodule("g_ema"), previous.path)
        load_module(discriminator, previous.submodule("d"), previous.path)
        opt_g.load_state_dict(previous.state["opt_g"])
        opt_d.load_state_dict(previous.state["opt_d"])
        set_rng_state(previous.state["rng"])
        saved_best = previous.state["best"]  # None: nothing selected yet (strict JSON has no Infinity)
        step, best = int(previous.state["step"]), math.inf if saved_best is None else float(saved_best)

    perceptual, perceptual_reason = build_perceptual(config.perceptual, weights_dir)
    config.perceptual = perceptual.name if perceptual is not None else "none"
    perceptual = perceptual.to(device) if perceptual is not None else None
    summary(f"perceptual loss: {config.perceptual} ({perceptual_reason})", is_main and previous is None)
    g_train, d_train = generator, discriminator
    use_cls = config.cls and config.discriminator == "drgan"  # the PatchGAN has no grade head
    vae = config.arch == "spade" and config.spade_vae
    if context.enabled:
        ids = [device.index] if device.type == "cuda" else None
        g_train = nn.parallel.DistributedDataParallel(generator, device_ids=ids)
        # under --no-cls the grade heads of D take no loss
        d_train = nn.parallel.DistributedDataParallel(discriminator, device_ids=ids,
                                                      find_unused_parameters=not use_cls)

    run_config = {"kind": "render", **config.to_dict(), "grading_dim": grading_dim,
                  "perceptual_active": perceptual is not None, "data": str(data),
                  "init": str(init) if init else None, "training_set": fingerprint_reference(training_set),
                  "grader": grader_info}
    run = RunFolder(out, run_config, resume=resume, is_main=is_main, training_set=training_set)
    if previous is not None:
        run.drop_records_after("step", step)
    else:
        run.log({"event": "start", "stage": config.stage, "arch": config.arch,
                 "perceptual": config.perceptual, "agm": space is not None})
        if grader_info is not None:
            run.log({"event": "grader", **grader_info})

    # one replica in a single process too, so that a global batch holds the same images whatever the world size;
    # rank r takes positions r, r + world, ... of each epoch's permutation (drop_last: no padding repeats);
    # a resumed run enters its epoch after the batches already trained on. The loader draws its worker base
    # seed from its own generator, not from the global one that the checkpoint's RNG state describes.
    sampler = ResumableSampler(dataset, num_replicas=world, rank=context.rank, shuffle=True, seed=config.seed,
                               drop_last=True)
    loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, drop_last=True,
                        generator=torch_generator(config.seed))
    selection, val_loader, best_step = None, None, None
    val_set = FundusDataset(data, config.res, config.channels, split="val") if index.subset("val") else None
    if val_set is not None:
        val_set.samples = val_set.samples[: config.val_images]
        val_loader = DataLoader(val_set, batch_size=16)
    preview = next(iter(DataLoader(val_set or dataset, batch_size=min(4, len(val_set or dataset)),
                                   generator=torch_generator(0))))
    # bf16 autocast on CUDA and on CPU (measured 1.5-2x on CPUs with avx512_bf16 or AMX: ../shared/ENVIRONMENT.md)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if config.amp else nullcontext()

    def prepare(batch_: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = resize_image(batch_["image"], size).to(device)
        masks = resize_masks(batch_["masks"], size).to(device)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
            masks = masks.contiguous(memory_format=torch.channels_last)
        return images, masks, batch_["grade"].to(device)

    def sample_generators(step_: int) -> list[torch.Generator]:
        """One generator per sample of this rank's batch, seeded by the sample's position in the global stream."""
        first = step_ * local_batch * world + context.rank
        return [torch_generator(sample_seed(config.seed, first + world * j), device) for j in range(local_batch)]

    def render_held_out(batch_: dict, first: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """EMA renders of a fixed batch; image ``first + i`` always has the same noise and grading vector."""
        images, masks, grades = prepare(batch_)
        generators = [torch_generator(config.seed + first + i, device) for i in range(len(images))]
        grading = None
        if space is not None:
            grading = space.sample(sampling_grades(grades, space, generators), generators)
        with torch.no_grad():
            fake, _ = ema(masks, grading, generators)
        return images, masks, fake.float()

    if is_main and val_loader is not None:
        real_val = torch.cat([prepare(b)[0].float().cpu() for b in val_loader])
        selection = HeldOutSelection(real_val, device)
        if previous is not None and previous.state.get("selection") == selection.metric:
            selection.best, best_step = best, previous.state.get("best_step")
        if previous is None:
            summary(f"best.safetensors: lowest {selection.metric} of renders of {len(real_val)} split=val masks "
                    "against their photographs (SWD reported)", True)
    elif is_main:
        summary(f"{data}: no split=val rows, nothing held out to select on: best.safetensors is the latest "
                "snapshot (make a val split with retina data split)", previous is None)

    def save(name: str) -> None:
        tensors = {**module_tensors("g", generator), **module_tensors("g_ema", ema),
                   **module_tensors("d", discriminator)}
        if space is not None:
            tensors.update(module_tensors("space", space))
        state = {"step": step, "best": best if math.isfinite(best) else None, "stage": config.stage,
                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": rng_state(),
                 "selection": selection.metric if selection is not None else "latest", "best_step": best_step}
        run.save(name, tensors, run_config, state)

    epoch, consumed = divmod(step, max(1, len(loader)))
    iterator = None
    start_step = step
    with progress_bar(config.steps - step, f"render {config.arch}/{config.stage}", is_main) as bar:
        # Ctrl-C/SIGTERM: `last` is saved between steps (its resume starts the epoch's data order over, as any
        # resume does); the lambda reads `step` as it grows (late binding)
        for _ in checkpointed_steps(lambda: step < config.steps, lambda: save("last") if is_main else None):  # noqa: B023
            if iterator is None:
                sampler.set_epoch(epoch, skip=consumed * local_batch)
                iterator, consumed = iter(loader), 0
            try:
                real_batch = next(iterator)
            except StopIteration:
                iterator, epoch = None, epoch + 1
                continue
            real, masks, grades = prepare(real_batch)
            n = real.shape[0]
            generators = sample_generators(step)
            grading = None
            if space is not None:
                grading = space.sample(sampling_grades(grades, space, generators), generators)
            known_weight = known_grade_weight(grades, context)
            with autocast:
                kld = None
                if vae:  # SPADE --vae: z from the encoder's posterior of the real image; KL to N(0, I)
                    fake, kld = g_train(masks, grading, generators, real=real)
                    encoder_logits = None
                else:
                    fake, encoder_logits = g_train(masks, grading, generators)
                # discriminator step: real vs detached fake, grade classification on both (eq. 1, lambda_3)
                d_real, d_fake = split_outputs(d_train(torch.cat([masks, masks]), torch.cat([real, fake.detach()])), n)
                loss_d = (adversarial_loss(d_real, True, config.adversarial)
                          + adversarial_loss(d_fake, False, config.adversarial))
                if use_cls:
                    logits = [o.grade_logits for o in d_real + d_fake]
                    loss_d = loss_d + config.lambda_cls * known_weight * sum(
                        focal_loss(x, grades, config.focal_gamma) for x in logits
                    ) / len(d_real)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            with autocast:
                g_real, g_fake = split_outputs(d_train(torch.cat([masks, masks]), torch.cat([real, fake])), n)
                loss_adv = adversarial_loss(g_fake, True, config.adversarial, for_discriminator=False)
                loss_fm = feature_matching_loss(g_fake, g_real)
                loss_g = loss_adv + config.lambda_fm * loss_fm
                terms = {"loss_d": loss_d.detach(), "loss_adv": loss_adv.detach(), "loss_fm": loss_fm.detach()}
                if perceptual is not None:
                    loss_perc = perceptual(fake.float(), real)
                    loss_g = loss_g + config.lambda_perc * loss_perc
                    terms["loss_perc"] = loss_perc.detach()
                if kld is not None:
                    loss_g = loss_g + config.lambda_kld * kld
                    terms["loss_kld"] = kld.detach()
                if use_cls:
                    loss_cls = known_weight * sum(
                        focal_loss(f.grade_logits, grades, config.focal_gamma) for f in g_fake
                    ) / len(g_fake)
                    loss_g = loss_g + config.lambda_cls * loss_cls
                    terms["loss_cls"] = loss_cls.detach()
                if encoder_logits is not None:
                    # the encoder's grade head (III-E), used at test time when no grade is given
                    loss_grade = known_weight * focal_loss(encoder_logits, grades, config.focal_gamma)
                    loss_g = loss_g + config.lambda_cls * loss_grade
                    terms["loss_grade_head"] = loss_grade.detach()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            # EMA ramp-up (as StyleGAN's): early on the average follows the generator closely
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for target, source_p in zip(ema.parameters(), generator.parameters(), strict=True):
                    target.lerp_(source_p, 1 - decay)
                for target, source_b in zip(ema.buffers(), generator.buffers(), strict=True):
                    target.copy_(source_b)
            step += 1
            terms["loss_g"] = loss_g.detach()
            terms["l1"] = (fake.detach().float() - real).abs().mean()
            # the global batch's losses: means of the per-rank means (equal per-rank batches)
            values = all_reduce_mean(torch.stack([v.float() for v in terms.values()]), context).tolist()
            terms = dict(zip(terms, values, strict=True))
            bar.advance(1, g=terms["loss_g"], d=terms["loss_d"])
            run.log({"step": step, "stage": config.stage, **{k: round(v, 6) for k, v in terms.items()}})
            if is_main and (step % config.checkpoint_every == 0 or step % config.sample_every == 0
                            or step == config.steps):
                images, val_masks, val_fake = render_held_out(preview, 0)
                improved = selection is None  # nothing held out: the latest snapshot is "best"
                if selection is not None:
                    fakes = [render_held_out(b, 16 * i)[2].cpu() for i, b in enumerate(val_loader)]
                    scores = selection.score(torch.cat(fakes))
                    improved = scores.pop("is_best")
                    run.log({"step": step, **{"val_" + k.lower().replace("-", "_"): round(v, 6)
                                              for k, v in scores.items()}})
                    bar.note(f"step {step}: val {', '.join(f'{k} {v:.4g}' for k, v in scores.items())}"
                             f"{'  (best)' if improved else ''}")
                if step % config.sample_every == 0 or step == config.steps:
                    grid = torch.stack([mask_preview(val_masks, config.channels), (images.cpu() + 1) / 2,
                                        (val_fake.cpu() + 1) / 2], dim=1).flatten(0, 1)
                    from torchvision.utils import make_grid

                    picture = make_grid(grid, nrow=3, padding=1).clamp(0, 1).permute(1, 2, 0).numpy()
                    picture = (picture * 255).round().astype(np.uint8)
                    picture = caption_rows(picture, preview["grade"].tolist(), val_masks.shape[-1])
                    write_png(run.samples / f"{config.stage}_{step:07d}.png", picture)
                    run.add_image(f"samples/{config.stage}", picture, step)  # masks | real | render, in TensorBoard
                if improved:
                    best_step = step
                if selection is not None and improved:
                    best = selection.best
                    save("best")
                save("last")
                if selection is None:  # nothing held out: best is a copy of the latest snapshot
                    for suffix in (".safetensors", ".json"):
                        with atomic_path(out / f"best{suffix}") as temporary:
                            shutil.copyfile(out / f"last{suffix}", temporary)
    chosen = (f"best val {selection.metric} {best:.4g} at step {best_step}" if selection is not None and best_step
              else "best = latest snapshot (no val rows)")
    random_grader = (grader_info or {}).get("weights") == "random weights"
    summary(f"render {config.arch}/{config.stage}: {step - start_step} steps (total {step}) on {len(dataset)} "
            f"images at {size}px, {chosen}, perceptual {config.perceptual}"
            f"{', grader ' + config.grader_arch + ' from RANDOM weights' if random_grader else ''}, run {out}",
            is_main)
    return out


def steps_for(kimg: float | None, steps: int | None, batch: int, default: int) -> int:
    """--steps wins; --kimg K means K thousand real images shown."""
    if steps is not None:
        return steps
    if kimg is not None:
        return max(1, math.ceil(kimg * 1000 / batch))
    return default
