"""Configuration of the layout GANs. Defaults follow the papers; the CLI overrides them.

Sources: Son et al. 2021 (ACGAN for DR semantic labels: two G steps per D step, one-sided label smoothing,
ADA), Karras et al. 2020 "Training GANs with limited data" (ADA: target r_t = 0.6, 4-step update interval,
500 kimg for p to traverse 0..1, lazy R1 every 16 D steps, EMA half-life 10 kimg per 32 images, Adam
lr 0.0025 betas (0, 0.99)) and Karras et al. 2020 "Analyzing and improving StyleGAN" (StyleGAN2 generator).
Widths are CPU-sized. As in StyleGAN2 (channel_base / resolution), a layer's width depends on its resolution
only, not on the training resolution: ``width`` channels at 256 px, doubling per halving up to ``channel_max``.
Width 8 at 256 px is what keeps sampling at >= 50 masks/s at 256 px, batch 16, on a 2-core CPU (width 16:
29 masks/s; benchmarks/README.md); a 64-px model gets 32 channels at its output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ARCHS = ("stylegan", "acgan")


@dataclass
class GeneratorConfig:
    arch: str = "stylegan"
    res: int = 256  # training resolution; Son et al. train at 256 and upsample to 512 (sec. 2)
    channels: list[str] = field(default_factory=list)  # the mask channels this model produces, schema order
    width: int = 8  # feature channels at 256 px; doubled per halving (halved per doubling) up to channel_max
    channel_max: int = 128
    z_dim: int = 64
    w_dim: int = 64
    mapping_layers: int = 2  # StyleGAN2 uses 8; 2 suffices for 5 classes at this width (measured faster)
    embed_dim: int = 16  # grade embedding, concatenated to z in the mapping network
    # StyleGAN D: an auxiliary grade classifier beside the projection head. On by default: on the phantom it
    # lowered the layout score after 6 CPU-minutes from 1.76 to 1.58 (experiments/layout_phantom)
    d_classifier: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> GeneratorConfig:
        """The config stored in a checkpoint; options added since it was written take the value that reproduces
        its networks (checkpoints before ``d_classifier`` have a projection-only D)."""
        return cls(**{"d_classifier": False, **saved})

    def feature_channels(self, resolution: int) -> int:
        return max(1, min(self.channel_max, self.width * 256 // resolution))


@dataclass
class TrainConfig:
    lr_g: float = 0.0025  # Karras et al. 2020 (ADA), Adam betas (0, 0.99)
    lr_d: float = 0.0025
    beta1: float = 0.0
    beta2: float = 0.99
    g_steps: int = 2  # Son et al. sec. 2: two generator iterations per discriminator iteration
    label_smoothing: float = 0.9  # Son et al.: one-sided, target for reals
    r1_gamma: float = 1.0  # small-resolution setting of StyleGAN2-ADA; lazy (every r1_interval D steps)
    r1_interval: int = 16
    ac_weight: float = 1.0  # weight of the auxiliary grade-classification loss (ACGAN)
    ac_on_fakes: bool = True  # D's classifier also learns the requested grade of fakes (Odena et al.); False:
    # reals only, so G is rewarded for lesions that read as the grade on real masks, not for any code D can learn
    ada_target: float = 0.6  # r_t, Karras et al. 2020 sec. 3
    ada_interval: int = 4  # D steps between p updates
    ada_kimg: float = 500.0  # images for p to go 0 -> 1
    blur_sigma: float = 1.0  # Gaussian softening of real and fake masks before D (pixels at training res)
    blur_lesions_only: bool = False  # blur only the sparse lesion channels; vessels, disc and field stay sharp
    hard_fakes: bool = False  # D sees fakes thresholded at 0.5 (straight-through gradient), as sampling makes them
    ema_kimg_per_32: float = 10.0  # EMA half-life 10 kimg per 32 images of batch
    ema_rampup: float = 0.05
    w_avg_beta: float = 0.995  # per-grade running mean of w for truncation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LayoutTrainConfig:
    data: str = ""
    out: str = ""
    batch: int = 16
    kimg: float = 1.0
    snapshot_kimg: float = 0.5
    eval_n: int = 100  # generated masks for the best-checkpoint metric (a grade classifier needs some per grade)
    seed: int = 0
    device: str = "auto"
    amp: bool = False  # bf16 autocast on CUDA
    channels_last: bool = False
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
