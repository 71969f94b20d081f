"""Training loop of the layout GANs (StyleGAN2-ADA or ACGAN) with resume, DDP and best-checkpoint selection.

Data (retina.common.split): the masks of the set's split=train rows; ``best.safetensors`` is the snapshot with the
lowest layout score against its split=val masks (the training masks when it has none, said in one line); the
training rows' fingerprint is written to the run folder and referenced in every checkpoint.

Per D step: ``g_steps`` generator steps (Son et al.: 2), then one D step on reals and the last fakes, lazy R1
every ``r1_interval`` D steps, ADA p update every ``ada_interval`` D steps, EMA of G. Sparse lesion channels
make D's job easy (Son et al.), so D never sees hard masks: real and fake masks alike are softened by a
Gaussian blur (``blur_sigma``) after ADA; with the G:D step ratio and one-sided label smoothing this keeps D
from winning at once. With ``hard_fakes`` the fakes are thresholded at 0.5 before ADA and the blur, as sampling
thresholds them (straight-through gradient). StyleGAN2's regularisers, on in the faithful presets: style mixing
(``style_mixing``: the G batch's layers from a random cutoff on take a second z's w) and the lazy path-length
penalty (``pl_weight``, every ``pl_interval`` G steps, added to that step's G loss; G's Adam rates rescaled as for
lazy R1). Their random draws come from seeds of the run and the step, so a resumed run repeats them bit for bit.

Distributed (torchrun): each global batch is split into contiguous per-rank chunks (what a DistributedSampler
does, but contiguous, so that minibatch-stddev groups and per-sample latents are those of a single process
with the same global batch), and gradients are averaged with one all-reduce per network and step, as
StyleGAN2-ADA's training loop does instead of wrapping in DistributedDataParallel (G and D alternate
requires_grad, which DDP's reducer does not follow). Only rank 0 logs, writes samples and checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from retina.common.canonical import CanonicalDataset, Sample
from retina.common.checkpoint import load_module, module_tensors, rng_state, set_rng_state
from retina.common.dataset import FundusDataset
from retina.common.device import resolve_device
from retina.common.distributed import (
    DistributedContext,
    all_reduce_mean,
    barrier,
    init_distributed,
    local_device,
    shutdown,
)
from retina.common.errors import RetinaError
from retina.common.fingerprint import fingerprint, fingerprint_reference
from retina.common.imageio import write_png
from retina.common.interrupt import checkpointed_steps
from retina.common.progress import progress_bar, summary
from retina.common.run import RunFolder
from retina.common.schema import LESION_CHANNELS
from retina.common.seeding import sample_seed, seed_everything, torch_generator
from retina.common.split import selection_rows, training_rows
from retina.layout.ada import AdaptiveAugment
from retina.layout.config import GENERATOR_PRESET_FIELDS, GeneratorConfig, LayoutTrainConfig, TrainConfig
from retina.layout.losses import discriminator_loss, generator_loss, grade_loss, path_length_penalty, r1_penalty
from retina.layout.model import build_networks, expand_channels, per_sample_latents
from retina.layout.sample import preview_grid
from retina.layout.stylegan import mix_styles

# What `best.safetensors` is chosen by; a resumed run kept by another metric starts its best afresh.
BEST_METRIC = "layout_score with grade control"


def load_real_masks(data: str | Path | CanonicalDataset, res: int, samples: Sequence[Sample] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Masks of a canonical set's rows ``samples`` (default all) at ``res`` as uint8 (N, C, res, res), grades (N,),
    channel names."""
    dataset = FundusDataset(data, res, with_images=False, augment=None, samples=samples)
    if not dataset.channels:
        raise RetinaError(f"{dataset.index.root}: the data set has no masks/ channels; layout training needs masks")
    unknown = [s.name for s in dataset.samples if s.grade is None]
    if unknown:
        raise RetinaError(f"{dataset.index.root}/labels.csv: {len(unknown)} row(s) without a grade (e.g. {unknown[0]}),"
                          " needed for grade-conditioned layout training; fill in the grade column")
    masks = torch.stack([dataset[i]["masks"].to(torch.uint8) for i in range(len(dataset))])
    grades = torch.tensor([dataset.samples[i].grade for i in range(len(dataset))], dtype=torch.long)
    return masks, grades, tuple(dataset.channels)


def as_sampled(probabilities: torch.Tensor, hard: bool) -> torch.Tensor:
    """What D sees of a fake: its probabilities or, with ``hard``, the 0/1 masks that sampling thresholds them to
    (>= 0.5), with the sigmoid's gradient passed straight through (Bengio et al. 2013). Soft fakes let G draw
    faint lesions that D accepts and the threshold then erases; hard ones show D exactly what users get."""
    if not hard:
        return probabilities
    return probabilities + ((probabilities >= 0.5).to(probabilities.dtype) - probabilities).detach()


def soften(masks: torch.Tensor, sigma: float, blurred: torch.Tensor | None = None) -> torch.Tensor:
    """Blur masks in [0, 1] and map them to [-1, 1] for D (same for reals and fakes). ``blurred``: indices of
    the channels to blur (default all)."""
    if sigma > 0 and (blurred is None or len(blurred)):
        import kornia

        size = 2 * math.ceil(2 * sigma) + 1
        if blurred is None:
            masks = kornia.filters.gaussian_blur2d(masks, (size, size), (sigma, sigma))
        else:
            masks = masks.index_copy(1, blurred, kornia.filters.gaussian_blur2d(
                masks.index_select(1, blurred), (size, size), (sigma, sigma)))
    return masks * 2 - 1


def reduce_gradients(module: torch.nn.Module, context: DistributedContext) -> None:
    """Average gradients over ranks with one flat all-reduce (StyleGAN2-ADA's approach)."""
    if not context.enabled:
        return
    import torch.distributed as dist

    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= context.world_size
    for p, chunk in zip(params, flat.split([p.numel() for p in params]), strict=False):
        p.grad.copy_(chunk.view_as(p))


class LayoutTrainer:
    def __init__(self, config: LayoutTrainConfig, resume: bool = False, progress: bool = True):
        self.config = config
        self.device_base = resolve_device(config.device)
        self.context = init_distributed(self.device_base)
        self.device = local_device(self.device_base, self.context)
        self.progress = progress and self.context.is_main
        checkpoint = None
        if resume:
            from retina.common.checkpoint import Checkpoint

            checkpoint = Checkpoint(Path(config.out) / "last.safetensors").expect("layout")
        saved_loop = checkpoint.config["training"] if checkpoint is not None else {}
        # None: the resumed run's value, else the default (a resume keeps bf16 and the memory format it ran with)
        for name in ("batch", "seed", "snapshot_kimg", "kimg", "amp", "channels_last"):
            if getattr(config, name) is None:
                setattr(config, name, saved_loop.get(name, getattr(LayoutTrainConfig(), name)))
        if checkpoint is not None and int(round(config.kimg * 1000)) <= checkpoint.state["cur_nimg"]:
            done = checkpoint.state["cur_nimg"] / 1000
            raise RetinaError(f"{config.out} has already trained {done:g} kimg; pass --kimg larger than {done:g} "
                              "to continue")
        if config.batch % self.context.world_size:
            raise RetinaError(f"--batch {config.batch} is not divisible by the {self.context.world_size} processes")
        self.local_batch = config.batch // self.context.world_size
        seed_everything(config.seed)  # identical initial weights on every rank
        if checkpoint is not None:
            saved = GeneratorConfig.from_saved(checkpoint.config["generator"])
            for name in ("arch", "res", *GENERATOR_PRESET_FIELDS, "d_classifier"):
                wanted, kept = getattr(config.generator, name), getattr(saved, name)
                if wanted is not None and wanted != kept:
                    option = "--" + name.replace("_", "-")
                    raise RetinaError(f"{checkpoint.path}: trained with {option} {kept}, not {wanted}; resume "
                                      f"with {option} {kept} or start a new --out")
            config.generator = saved
            config.train = TrainConfig(**{**checkpoint.config["train"], **_overrides(config.train)})
            config.data = config.data or checkpoint.config["training"]["data"]
        if not config.data:
            raise RetinaError("--data is required (a canonical data set with masks)")
        if config.generator.arch != "stylegan" and (config.train.style_mixing > 0 or config.train.pl_weight > 0):
            raise RetinaError(f"--style-mixing and --pl-weight are StyleGAN2 regularisers; --arch "
                              f"{config.generator.arch} has neither (set them to 0)")
        gen = config.generator
        if gen.res < 8 or gen.res & (gen.res - 1):
            raise RetinaError(f"--res {gen.res}: use a power of two >= 8 (e.g. 32, 64, 128, 256)")
        index = CanonicalDataset(config.data)
        train_rows = training_rows(index, "layout training", self.context.is_main)
        self.real, self.real_grades, channels = load_real_masks(index, gen.res, train_rows)
        # best.safetensors is chosen on held-out masks: the val rows (else, said once, the training rows)
        selection, self.selected_on = selection_rows(index, "layout best checkpoint", self.context.is_main)
        self.selection, self.selection_grades, _ = load_real_masks(index, gen.res, selection[:config.eval_n])
        self._fingerprint = fingerprint([(index, train_rows)])
        self.training_set = fingerprint_reference(self._fingerprint)
        if gen.channels and tuple(gen.channels) != channels:
            raise RetinaError(f"{config.data}: channels {','.join(channels)} differ from the checkpoint's "
                              f"{','.join(gen.channels)}")
        gen.channels = list(channels)
        self.G, self.D = build_networks(gen)
        self.G, self.D = self.G.to(self.device), self.D.to(self.device)
        if config.channels_last:
            self.G, self.D = self.G.to(memory_format=torch.channels_last), self.D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        seed_everything(config.seed + self.context.rank)  # ADA draws differ per rank, as per-rank data does
        t = config.train
        # Lazy regularisation: rescale D's Adam hyper-parameters (StyleGAN2 appendix B).
        ratio = t.r1_interval / (t.r1_interval + 1)
        g_ratio = t.pl_interval / (t.pl_interval + 1) if t.pl_weight > 0 else 1.0
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g * g_ratio,
                                      betas=(t.beta1 ** g_ratio, t.beta2 ** g_ratio), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d * ratio,
                                      betas=(t.beta1 ** ratio, t.beta2 ** ratio), eps=1e-8)
        self.ada = AdaptiveAugment(t.ada_target, t.ada_interval, t.ada_kimg)
        self.cur_nimg, self.step, self.fakes_drawn = 0, 0, 0
        self.pl_mean = torch.zeros((), device=self.device)  # running mean path length (StyleGAN2's pl_mean)
        self.best_score = math.inf
        self.run = RunFolder(config.out, self._checkpoint_config(), resume=resume, is_main=self.context.is_main,
                             training_set=self._fingerprint)
        if checkpoint is not None:
            self._restore(checkpoint)
        self._blurred_channels = None  # all
        if config.train.blur_lesions_only:
            self._blurred_channels = torch.tensor(
                [i for i, c in enumerate(gen.channels) if c in LESION_CHANNELS], dtype=torch.long, device=self.device)

    # -- checkpoints ------------------------------------------------------------------------------
    def _checkpoint_config(self) -> dict:
        return {"kind": "layout", "arch": self.config.generator.arch, "generator": self.config.generator.to_dict(),
                "train": self.config.train.to_dict(), "training": self.config.to_dict(),
                "training_set": self.training_set, "best_selected_on": self.selected_on}

    def _best_metric(self) -> str:
        return f"{BEST_METRIC} on {self.selected_on} masks"

    def _tensors(self) -> dict:
        return {**module_tensors("g", self.G), **module_tensors("d", self.D), **module_tensors("g_ema", self.G_ema)}

    def _state(self, rng_ranks: list[torch.Tensor] | None = None) -> dict:
        return {"cur_nimg": self.cur_nimg, "step": self.step, "fakes_drawn": self.fakes_drawn,
                "rng_ranks": rng_ranks or [],
                "best_score": None if math.isinf(self.best_score) else self.best_score,
                "best_metric": self._best_metric(), "pl_mean": float(self.pl_mean),
                "ada": self.ada.state(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": rng_state()}

    def _restore(self, checkpoint) -> None:
        for prefix, module in (("g", self.G), ("d", self.D), ("g_ema", self.G_ema)):
            load_module(module, checkpoint.submodule(prefix), checkpoint.path)
        state = checkpoint.state
        self.cur_nimg, self.step, self.fakes_drawn = state["cur_nimg"], state["step"], state["fakes_drawn"]
        self.pl_mean = torch.tensor(float(state.get("pl_mean", 0.0)), device=self.device)
        self.best_score = math.inf if state["best_score"] is None else state["best_score"]
        # a best kept by another metric (or on other masks) is not comparable: start over
        if state.get("best_metric") != self._best_metric():
            self.best_score = math.inf
        self.ada.load_state(state["ada"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.context.rank == 0:
            set_rng_state(state["rng"])
        # every rank's own torch generator (ADA's draws, ACGAN's dropout), when resumed on as many ranks
        ranks = state.get("rng_ranks") or []
        if self.context.rank > 0 and len(ranks) == self.context.world_size:
            torch.set_rng_state(ranks[self.context.rank])
        self.run.drop_records_after("nimg", self.cur_nimg)  # the curve continues from the checkpoint

    # -- data -------------------------------------------------------------------------------------
    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's contiguous chunk of the global batch starting at image ``cur_nimg`` of the data stream
        (one fresh permutation per epoch, seeded by the run seed and the epoch)."""
        count = len(self.real)
        first = self.cur_nimg + self.context.rank * self.local_batch
        positions = range(first, first + self.local_batch)
        permutations: dict[int, torch.Tensor] = {}
        indices = []
        for position in positions:
            epoch = position // count
            if epoch not in permutations:
                permutations[epoch] = torch.randperm(count, generator=torch_generator(self.config.seed * 7919 + epoch))
            indices.append(int(permutations[epoch][position % count]))
        index = torch.tensor(indices)
        return self.real[index].to(self.device).float(), self.real_grades[index].to(self.device)

    def _fake(self, grades: torch.Tensor) -> torch.Tensor:
        first = self.fakes_drawn + self.context.rank * self.local_batch
        seeds = [sample_seed(self.config.seed, first + i) for i in range(self.local_batch)]
        z, generators = per_sample_latents(seeds, self.G.z_dim, self.device)
        if hasattr(self.G, "synthesis"):
            logits = self.G.synthesis(self._styles(z, grades, self.fakes_drawn, first), generators)
        else:
            logits = self.G(z, grades, generators)
        self.fakes_drawn += self.config.batch
        return torch.sigmoid(logits.float())

    def _styles(self, z: torch.Tensor, grades: torch.Tensor, batch_index: int, first: int) -> torch.Tensor:
        """StyleGAN's w (B, w_dim) for ``z`` or, with style mixing on, per-layer styles (B, num_ws, w_dim). The
        second z and the cutoff come from seeds of the run, the global batch (``batch_index``) and the sample
        (``first + i``): the same on every rank and after a resume."""
        w = self.G.mapping(z, grades)
        probability = self.config.train.style_mixing
        if probability <= 0:
            return w
        seed = self.config.seed
        second = [sample_seed(seed + 4_000_037, first + i) for i in range(len(z))]
        z_second, _ = per_sample_latents(second, self.G.z_dim, self.device)
        draw = torch_generator(sample_seed(seed + 3_000_017, batch_index))
        return mix_styles(w, self.G.mapping(z_second, grades), self.G.num_ws, probability, draw)

    def _path_length_loss(self, grades: torch.Tensor, g_step: int) -> torch.Tensor:
        """StyleGAN2's lazy path-length penalty on ``1 / pl_batch_shrink`` of the batch, times ``pl_interval``
        (it runs every ``pl_interval`` G steps); updates the running mean of the path length."""
        t = self.config.train
        count = max(1, self.local_batch // t.pl_batch_shrink)
        first = g_step * self.config.batch + self.context.rank * count
        seeds = [sample_seed(self.config.seed + 5_000_011, first + i) for i in range(count)]
        z, generators = per_sample_latents(seeds, self.G.z_dim, self.device)
        # mixing draws from a stream of its own (offset indices), apart from those of the G steps' fakes
        ws = self._styles(z, grades[:count], (1 << 40) + g_step, (1 << 40) + first)
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.G.num_ws, -1)
        images = self.G.synthesis(ws, generators).float()
        noise = torch.randn(images.shape, generator=torch_generator(seeds[0])).to(self.device)
        noise = noise / math.sqrt(images.shape[2] * images.shape[3])
        penalty, lengths = path_length_penalty(images, ws, self.pl_mean, t.pl_decay, noise)
        batch_mean = all_reduce_mean(lengths.mean(), self.context)  # every rank keeps the same running mean
        self.pl_mean = self.pl_mean.lerp(batch_mean, t.pl_decay)
        return penalty.mean() * t.pl_weight * t.pl_interval

    def _autocast(self):
        if self.config.amp:  # CUDA, and CPUs with bf16 units (avx512_bf16, AMX)
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _soften(self, masks: torch.Tensor) -> torch.Tensor:
        return soften(masks, self.config.train.blur_sigma, self._blurred_channels)

    def _discriminate(self, masks: torch.Tensor, grades: torch.Tensor):
        with self._autocast():
            return self.D(masks, grades)

    # -- one step ---------------------------------------------------------------------------------
    def train_step(self) -> dict:
        t = self.config.train
        real, grades = self._real_batch()
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        g_losses, pl_penalty = [], None
        for g_index in range(t.g_steps):
            with self._autocast():
                z_first = self.fakes_drawn
                fake = self._fake(grades)
            logits, grade_logits = self._discriminate(self._soften(self.ada(as_sampled(fake, t.hard_fakes))),
                                                      grades)
            loss_g = generator_loss(logits.float()) + t.ac_weight * grade_loss(grade_logits, grades)
            g_step = self.step * t.g_steps + g_index
            if t.pl_weight > 0 and g_step % t.pl_interval == 0:
                with self._autocast():
                    pl_penalty = self._path_length_loss(grades, g_step)
                loss_g = loss_g + pl_penalty
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            reduce_gradients(self.G, self.context)
            self.opt_g.step()
            g_losses.append(loss_g.detach())
            if hasattr(self.G, "update_w_avg"):
                self._update_w_avg(z_first, grades)
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        do_r1 = t.r1_gamma > 0 and self.step % t.r1_interval == 0
        real_in = self._soften(self.ada(real)).detach().requires_grad_(do_r1)
        real_logits, real_grade_logits = self._discriminate(real_in, grades)
        fake_in = self._soften(self.ada(as_sampled(fake.detach(), t.hard_fakes)))
        fake_logits, fake_grade_logits = self._discriminate(fake_in, grades)
        loss_d = discriminator_loss(real_logits.float(), fake_logits.float(), t.label_smoothing)
        loss_d = loss_d + t.ac_weight * grade_loss(real_grade_logits, grades)
        if t.ac_on_fakes:
            loss_d = loss_d + t.ac_weight * grade_loss(fake_grade_logits, grades)
        r1 = torch.zeros((), device=self.device)
        if do_r1:
            r1 = r1_penalty(real_logits.float(), real_in)
            loss_d = loss_d + r1 * (t.r1_gamma / 2) * t.r1_interval
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        reduce_gradients(self.D, self.context)
        self.opt_d.step()
        self.ada.accumulate(real_logits)
        self.step += 1
        self.cur_nimg += self.config.batch
        if self.step % t.ada_interval == 0:
            self.ada.update(self.config.batch * t.ada_interval, self.context)
        self._update_ema()
        pl_value = torch.zeros((), device=self.device) if pl_penalty is None else pl_penalty.detach()
        values = torch.stack([torch.stack(g_losses).mean(), loss_d.detach(), r1.detach(), pl_value])
        loss_g_value, loss_d_value, r1_value, pl_value = all_reduce_mean(values, self.context).tolist()
        record = {"kimg": self.cur_nimg / 1000, "nimg": self.cur_nimg, "step": self.step, "loss_g": loss_g_value,
                  "loss_d": loss_d_value, "r1": r1_value if do_r1 else None, "ada_p": self.ada.p,
                  "ada_rt": self.ada.last_rt}
        if t.pl_weight > 0:
            record["pl"] = pl_value if pl_penalty is not None else None
            record["pl_mean"] = float(self.pl_mean)
        return record

    @torch.no_grad()
    def _update_w_avg(self, first: int, grades: torch.Tensor) -> None:
        """Per-grade mean w, computed on the whole global batch so that every rank holds the same buffer."""
        seeds = [sample_seed(self.config.seed, first + i) for i in range(self.config.batch)]
        z, _ = per_sample_latents(seeds, self.G.z_dim, self.device)
        all_grades = _all_gather(grades, self.context)
        w = self.G.mapping(z, all_grades)
        self.G.update_w_avg(w, all_grades, self.config.train.w_avg_beta)

    @torch.no_grad()
    def _update_ema(self) -> None:
        t = self.config.train
        ema_nimg = t.ema_kimg_per_32 * 1000 * self.config.batch / 32
        ema_nimg = min(ema_nimg, self.cur_nimg * t.ema_rampup)
        beta = 0.5 ** (self.config.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=False):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=False):
            b_ema.copy_(b)

    # -- snapshots --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> tuple[float, dict]:
        """Layout score (lower is better) of a fixed generated batch against the selection masks (the val rows, up
        to ``eval_n``), grade control included: without it, the best checkpoint of a phantom run was one whose
        grades a classifier could not read (agreement 0.27), while a later one reached 0.68 at a better score
        (experiments/layout_phantom)."""
        from retina.layout.metrics import layout_report

        real = self.selection.bool().numpy()
        real_grades = self.selection_grades.tolist()
        seeds = [sample_seed(self.config.seed + 1_000_003, i) for i in range(len(real_grades))]
        z, generators = per_sample_latents(seeds, self.G_ema.z_dim, self.device)
        labels = torch.tensor(real_grades, device=self.device)
        fake = (torch.sigmoid(self.G_ema(z, labels, generators).float()) >= 0.5).cpu().numpy()
        report = layout_report(real, real_grades, fake, real_grades, self.config.generator.channels)
        return float(report["score"]), report

    @torch.no_grad()
    def write_grid(self) -> Path:
        grades = [g for g in range(5) for _ in range(6)]
        seeds = [sample_seed(self.config.seed + 2_000_003, i) for i in range(len(grades))]
        z, generators = per_sample_latents(seeds, self.G_ema.z_dim, self.device)
        probabilities = torch.sigmoid(self.G_ema(z, torch.tensor(grades, device=self.device), generators).float())
        masks = expand_channels((probabilities >= 0.5).cpu().numpy(), tuple(self.config.generator.channels))
        path = self.run.samples / f"kimg{self.cur_nimg / 1000:08.3f}.png"
        real = expand_channels(self.selection[:6].bool().numpy(), tuple(self.config.generator.channels))
        grid = preview_grid(masks, grades, per_row=6, real=real, real_grades=self.selection_grades[:6].tolist())
        write_png(path, grid)
        self.run.add_image("samples", grid, self.cur_nimg)  # the same grid in TensorBoard
        return path

    def snapshot(self) -> dict:
        record: dict = {"kimg": self.cur_nimg / 1000, "nimg": self.cur_nimg, "snapshot": True}
        # each rank's torch RNG goes into the checkpoint: ranks draw different ADA augmentations
        rng_ranks = list(_all_gather(torch.get_rng_state()[None], self.context)) if self.context.enabled else None
        if self.context.is_main:
            score, _ = self.evaluate()
            record["layout_score"] = score
            record["selected_on"] = self.selected_on
            self.write_grid()
            if score < self.best_score:
                self.best_score = score
                record["best"] = True
                self.run.save("best", self._tensors(), self._checkpoint_config(), self._state(rng_ranks))
            self.run.save("last", self._tensors(), self._checkpoint_config(), self._state(rng_ranks))
            self.run.log(record)
        barrier(self.context)
        return record

    # -- loop -------------------------------------------------------------------------------------
    def train(self) -> dict:
        config = self.config
        total = int(round(config.kimg * 1000))
        snapshot_every = max(int(round(config.snapshot_kimg * 1000)), config.batch)
        last: dict = {}
        next_snapshot = (self.cur_nimg // snapshot_every + 1) * snapshot_every
        with progress_bar(total, f"layout {config.generator.arch} {config.generator.res}px", self.progress) as bar:
            bar.advance(min(self.cur_nimg, total))
            for _ in checkpointed_steps(lambda: self.cur_nimg < total, self._checkpoint_interrupted):
                last = self.train_step()
                self.run.log(last)
                bar.advance(config.batch, loss_g=last["loss_g"], loss_d=last["loss_d"], p=last["ada_p"])
                if self.cur_nimg >= next_snapshot or self.cur_nimg >= total:
                    self.snapshot()
                    next_snapshot = (self.cur_nimg // snapshot_every + 1) * snapshot_every
            elapsed = bar.elapsed
        best = "n/a" if math.isinf(self.best_score) else f"{self.best_score:.4f}"
        # at least one step ran: a resume whose --kimg is not above the images shown is refused in __init__
        summary(f"trained layout {config.generator.arch} {config.generator.res}px to {self.cur_nimg / 1000:.3f} kimg"
                f" in {elapsed:.0f} s: loss_g {last['loss_g']:.3f} loss_d {last['loss_d']:.3f} ada p "
                f"{self.ada.p:.3f}, best layout score {best} (on {self.selected_on} masks) -> "
                f"{self.run.path}/last.safetensors",
                self.context.is_main)
        return last

    def _checkpoint_interrupted(self) -> None:
        """Ctrl-C/SIGTERM between two steps: save ``last`` so that --resume continues from here, bit-exactly."""
        if self.context.is_main:
            self.run.save("last", self._tensors(), self._checkpoint_config(), self._state())
            self.run.log({"event": "interrupted", "nimg": self.cur_nimg})

    def close(self, finished: bool = False) -> None:
        shutdown(self.context, finished)


def _all_gather(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    if not context.enabled:
        return values
    import torch.distributed as dist

    gathered = [torch.empty_like(values) for _ in range(context.world_size)]
    dist.all_gather(gathered, values.contiguous())
    return torch.cat(gathered)


def _overrides(train: TrainConfig) -> dict:
    """Training options the user changed from the defaults (they win over a resumed run's values)."""
    defaults = TrainConfig()
    return {k: v for k, v in train.to_dict().items() if getattr(defaults, k) != v}


def train_layout(config: LayoutTrainConfig, resume: bool = False, progress: bool = True) -> dict:
    trainer = LayoutTrainer(config, resume=resume, progress=progress)
    try:
        result = trainer.train()
    except BaseException:
        trainer.close()
        raise
    trainer.close(finished=True)
    return result

