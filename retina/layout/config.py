"""Configuration of the layout GANs. Defaults follow the papers; the CLI overrides them.

Sources: Son et al. 2021 (ACGAN for DR semantic labels: two G steps per D step, one-sided label smoothing,
ADA), Karras et al. 2020 "Training GANs with limited data" (ADA: target r_t = 0.6, 4-step update interval,
500 kimg for p to traverse 0..1, lazy R1 every 16 D steps, EMA half-life 10 kimg per 32 images, Adam
lr 0.0025 betas (0, 0.99)) and Karras et al. 2020 "Analyzing and improving StyleGAN" (StyleGAN2 generator).
As in StyleGAN2, a layer's width depends on its resolution only: ``min(channel_base / resolution, channel_max)``.
Presets (``retina layout train --cfg``, like stylegan2-ada-pytorch's ``--cfg``):

- ``small`` (the default): CPU-sized, z = w = 64, 2 mapping layers, channel base 2048 (8 channels at 256 px,
  32 at 64 px), no style mixing or path-length regulariser. It keeps sampling at >= 50 masks/s at 256 px, batch 16,
  on a 2-core CPU (benchmarks/README.md) and trains in CPU-minutes on the phantom.
- ``paper256``: stylegan2-ada-pytorch's ``paper256`` (train.py cfg_specs): z = w = 512, 8 mapping layers, channel
  base 16384 (fmaps 0.5) capped at 512 (64 channels at 256 px, 512 at <= 32 px), style mixing 0.9, path length
  weight 2 (its StyleGAN2Loss defaults); ~25 M generator parameters at 256 px.
- ``auto``: stylegan2-ada-pytorch's ``auto`` at our resolutions: as paper256 but 2 mapping layers and channel base
  32768 from 512 px up (fmaps 1); ~23.5 M parameters at 256 px. (The issue quotes channel base 8192 for it; the
  reference's code says 16384 below 512 px.)

The presets set the network and the two regularisers only; the training hyper-parameters (lr 0.0025, R1 gamma 1,
batch 16) are those of the rest of this file for every preset.
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
    cfg: str = "small"  # the preset these networks came from (CFG_PRESETS); the fields below are what counts
    channel_base: int = 2048  # feature channels at resolution r: channel_base / r, capped at channel_max
    channel_max: int = 128
    z_dim: int = 64
    w_dim: int = 64
    mapping_layers: int = 2  # StyleGAN2 uses 8; 2 suffices for 5 classes at this width (measured faster)
    embed_dim: int = 16  # grade embedding, concatenated to z in the mapping network (the reference: w_dim)
    # StyleGAN D: an auxiliary grade classifier beside the projection head. On by default: on the phantom it
    # lowered the layout score after 6 CPU-minutes from 1.76 to 1.58 (experiments/layout_phantom)
    d_classifier: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> GeneratorConfig:
        """The config stored in a checkpoint; options added since it was written take the value that reproduces
        its networks (checkpoints before ``d_classifier`` have a projection-only D; before ``channel_base`` the
        width was given at 256 px)."""
        saved = dict(saved)
        if "width" in saved:
            saved["channel_base"] = saved.pop("width") * 256
        return cls(**{"d_classifier": False, **saved})

    def feature_channels(self, resolution: int) -> int:
        return max(1, min(self.channel_max, self.channel_base // resolution))


# Network options and regulariser defaults of each --cfg preset (see the module docstring). "auto" chooses its
# channel base by resolution, as the reference does.
CFG_PRESETS: dict[str, dict[str, Any]] = {
    "small": {"z_dim": 64, "w_dim": 64, "mapping_layers": 2, "channel_base": 2048, "channel_max": 128,
              "embed_dim": 16, "style_mixing": 0.0, "pl_weight": 0.0},
    "paper256": {"z_dim": 512, "w_dim": 512, "mapping_layers": 8, "channel_base": 16384, "channel_max": 512,
                 "embed_dim": 512, "style_mixing": 0.9, "pl_weight": 2.0},
    "auto": {"z_dim": 512, "w_dim": 512, "mapping_layers": 2, "channel_base": 16384, "channel_max": 512,
             "embed_dim": 512, "style_mixing": 0.9, "pl_weight": 2.0},
}
GENERATOR_PRESET_FIELDS = ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "embed_dim")
TRAIN_PRESET_FIELDS = ("style_mixing", "pl_weight")


def cfg_preset(cfg: str, res: int) -> dict[str, Any]:
    """The options of preset ``cfg`` at training resolution ``res``."""
    if cfg not in CFG_PRESETS:
        from retina.common.errors import RetinaError

        raise RetinaError(f"--cfg {cfg}: unknown preset; choose one of {', '.join(CFG_PRESETS)}")
    preset = dict(CFG_PRESETS[cfg])
    if cfg == "auto" and res >= 512:  # stylegan2-ada-pytorch: fmaps = 1 if res >= 512 else 0.5
        preset["channel_base"] = 32768
    return preset


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
    # Style mixing (StyleGAN2-ADA's StyleGAN2Loss: 0.9): the share of G batches whose layers from a random cutoff
    # on take the w of a second z. 0 in the small preset.
    style_mixing: float = 0.0
    # Path-length regulariser (Karras et al. 2020, sec. 3.2; the reference's defaults): weight 2, running-mean decay
    # 0.01, lazy every 4 G steps on half the batch. 0 (off) in the small preset.
    pl_weight: float = 0.0
    pl_decay: float = 0.01
    pl_interval: int = 4
    pl_batch_shrink: int = 2
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
    amp: bool = False  # bf16 autocast (CUDA and CPU)
    channels_last: bool = False
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
