"""StyleGAN2-style mask generator and projection-conditional discriminator (Karras et al. 2020, CPU-sized).

Generator: a mapping network from (z, grade embedding) to w, modulated/demodulated 3x3 convolutions with
per-layer noise inputs, and a skip output (one logit per mask channel at every resolution, upsampled and
summed). Truncation pulls w toward the running mean w of the requested grade. Discriminator: residual blocks,
minibatch standard deviation, a projection head (Miyato & Koyama 2018) for the grade and, by default, an
auxiliary grade classifier on the same features (Odena et al. 2017).
Modulation is applied to activations rather than to a per-sample weight (StyleGAN2's non-fused path): the
same arithmetic without grouped convolutions, which are slow on CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from retina.common.schema import NUM_GRADES
from retina.common.seeding import per_sample_randn
from retina.layout.config import GeneratorConfig

_SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * _SQRT2


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weights stored N(0, 1), scaled at run time)."""

    def __init__(self, fan_in: int, fan_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((fan_out,), float(bias_init)) / lr_mul)
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(fan_in), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return _lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate, so that Adam at lr 0.0025 (the papers' setting) is stable."""

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.padding = 1.0 / math.sqrt(cin * kernel * kernel), kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class ModulatedConv(nn.Module):
    """Modulated/demodulated convolution; ``up=True`` doubles the resolution by convolving at the input
    resolution and then upsampling bilinearly. On a 2-core CPU that is 2.5x cheaper than upsampling first (a
    quarter of the pixels to convolve, half the channels to interpolate) and, unlike a stride-2 transposed
    convolution, draws no checkerboard (measured: a 4x4 transposed kernel left a grid in the vessel channel).
    The style scales the input channels before the convolution, at the lower resolution."""

    def __init__(self, cin: int, cout: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.demodulate, self.up, self.padding = demodulate, up, kernel // 2

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(convolved x + bias, demodulation (B, cout, 1, 1) or None)``: the caller folds the demodulation into
        its next element-wise pass instead of spending one on it here."""
        styles = self.affine(w)
        weight = self.weight * self.scale
        x = F.conv2d(x * styles[:, :, None, None], weight, bias, padding=self.padding)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if not self.demodulate:
            return x, None
        energy = styles.square() @ weight.square().sum(dim=(2, 3)).t()  # (B, cout)
        return x, torch.rsqrt(energy + 1e-8)[:, :, None, None]


class StyleLayer(nn.Module):
    """Modulated convolution, noise input, bias and leaky ReLU. The bias is added inside the convolution, before
    demodulation (so its effect is scaled by the demodulation factor, unlike StyleGAN2's bias after it): that
    saves a full pass over the activations, which at 256 px on a CPU costs as much as the convolution."""

    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(cin, cout, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, generators: list[torch.Generator] | None) -> torch.Tensor:
        x, demodulation = self.conv(x, w, self.bias)
        noise = per_sample_randn(generators, (1, self.resolution, self.resolution), x)
        # demodulation, noise and the sqrt(2) gain of the activation in one pass: lrelu(a) * s equals
        # lrelu(a * s) for s > 0, so the gain folds into the terms before the activation
        x = torch.addcmul(noise * (self.noise_strength * _SQRT2), x, demodulation * _SQRT2)
        return F.leaky_relu_(x, 0.2)


class ToMask(nn.Module):
    """Modulated 1x1 convolution to one logit per mask channel, added onto the skip image of the resolution
    below (already upsampled) in one batched matrix product instead of three passes (style, convolution, sum)."""

    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(cin, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``skip + conv(x)`` without this layer's bias: the generator adds every level's bias once, at 4x4
        (bilinear upsampling carries a constant through unchanged)."""
        batch, cin, height, width = x.shape
        weight = self.conv.weight.view(-1, cin) * self.conv.scale  # (channels, cin)
        per_sample = self.conv.affine(w)[:, None, :] * weight[None]  # (B, channels, cin)
        if x.is_contiguous(memory_format=torch.channels_last):  # pixel rows of channels: views, no copies
            rows = x.permute(0, 2, 3, 1).reshape(batch, height * width, cin)
            base = skip.permute(0, 2, 3, 1).reshape(batch, height * width, -1)
            out = torch.baddbmm(base, rows, per_sample.transpose(1, 2))
            return out.view(batch, height, width, -1).permute(0, 3, 1, 2)
        out = torch.baddbmm(skip.reshape(batch, -1, height * width), per_sample, x.reshape(batch, cin, -1))
        return out.view(batch, -1, height, width)


class StyleGenerator(nn.Module):
    """``forward(z, grades, generators, truncation) -> logits (B, C, res, res)``; sigmoid gives the masks."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.z_dim, self.w_dim = config.z_dim, config.w_dim
        self.embed = nn.Embedding(NUM_GRADES, config.embed_dim)
        layers: list[nn.Module] = []
        fan_in = config.z_dim + config.embed_dim
        for _ in range(config.mapping_layers):
            layers.append(EqualLinear(fan_in, config.w_dim, lr_mul=0.01, act=True))  # lr_mul: StyleGAN sec. 2
            fan_in = config.w_dim
        self.mapping_net = nn.Sequential(*layers)
        self.register_buffer("w_avg", torch.zeros(NUM_GRADES, config.w_dim))
        channels = len(config.channels)
        c4 = config.feature_channels(4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.layers = nn.ModuleList([StyleLayer(c4, c4, config.w_dim, 4)])
        self.to_masks = nn.ModuleList([ToMask(c4, channels, config.w_dim)])
        resolution, cin = 8, c4
        while resolution <= config.res:
            cout = config.feature_channels(resolution)
            self.layers.append(StyleLayer(cin, cout, config.w_dim, resolution, up=True))
            self.layers.append(StyleLayer(cout, cout, config.w_dim, resolution))
            self.to_masks.append(ToMask(cout, channels, config.w_dim))
            resolution, cin = resolution * 2, cout

    def mapping(self, z: torch.Tensor, grades: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        def normalise(v: torch.Tensor) -> torch.Tensor:
            return v * torch.rsqrt(v.square().mean(dim=1, keepdim=True) + 1e-8)

        w = self.mapping_net(torch.cat([normalise(z), normalise(self.embed(grades))], dim=1))
        if truncation != 1.0:
            centre = self.w_avg[grades]
            w = centre + truncation * (w - centre)
        return w

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, grades: torch.Tensor, beta: float) -> None:
        """Running per-grade mean of w (truncation target). Callers pass every rank's w for DDP agreement."""
        for grade in grades.unique():
            selected = w[grades == grade].float().mean(dim=0)
            self.w_avg[grade].lerp_(selected, 1.0 - beta)

    @property
    def num_ws(self) -> int:
        """Style inputs of the synthesis network: one per modulated convolution plus the last ToMask; each ToMask
        shares its w with the next level's first convolution (stylegan2-ada-pytorch's ``num_ws``)."""
        return len(self.layers) + 1

    def synthesis(self, w: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """``w``: one style per sample (B, w_dim), or one per layer (B, num_ws, w_dim) as style mixing and the
        path-length regulariser make them."""
        def style(index: int) -> torch.Tensor:
            return w if w.dim() == 2 else w[:, index]

        x = self.const[None].expand(w.shape[0], -1, -1, -1)
        x = self.layers[0](x, style(0), generators)
        bias = torch.stack([to_mask.bias for to_mask in self.to_masks]).sum(dim=0)
        image = self.to_masks[0](x, style(1), bias[None, :, None, None].expand(x.shape[0], -1, *x.shape[2:]))
        for index, to_mask in enumerate(self.to_masks[1:]):
            x = self.layers[1 + 2 * index](x, style(1 + 2 * index), generators)
            x = self.layers[2 + 2 * index](x, style(2 + 2 * index), generators)
            image = to_mask(x, style(3 + 2 * index),
                            F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False))
        return image

    def forward(
        self,
        z: torch.Tensor,
        grades: torch.Tensor,
        generators: list[torch.Generator] | None = None,
        truncation: float = 1.0,
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, grades, truncation), generators)


def mix_styles(w: torch.Tensor, w_second: torch.Tensor, num_ws: int, probability: float,
               generator: torch.Generator) -> torch.Tensor:
    """Style mixing regularisation (Karras et al. 2019 sec. 3.1; stylegan2-ada-pytorch's StyleGAN2Loss.run_G):
    per layer styles (B, num_ws, w_dim) that, with ``probability``, switch from ``w`` to ``w_second`` at a cutoff
    drawn uniformly from 1..num_ws-1 (one cutoff per batch, as the reference draws it)."""
    cutoff = int(torch.randint(1, num_ws, (), generator=generator))
    if float(torch.rand((), generator=generator)) >= probability:
        cutoff = num_ws
    ws = w[:, None].expand(-1, num_ws, -1)
    if cutoff == num_ws:
        return ws
    return torch.cat([ws[:, :cutoff], w_second[:, None].expand(-1, num_ws - cutoff, -1)], dim=1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = EqualConv2d(cin, cin, 3)
        self.conv2 = EqualConv2d(cin, cout, 3)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(_lrelu(self.conv2(_lrelu(self.conv1(x)))), 2)
        return (x + skip) / _SQRT2


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the standard deviation over groups of consecutive samples as one extra feature map."""
    batch = x.shape[0]
    group = min(group, batch)
    if batch % group:
        group = 1
    if group == 1:
        return torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
    grouped = x.reshape(batch // group, group, *x.shape[1:])
    std = (grouped.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (batch/group,)
    std = std.repeat_interleave(group)[:, None, None, None].expand(-1, 1, *x.shape[2:])
    return torch.cat([x, std], dim=1)


class ProjectionDiscriminator(nn.Module):
    """``forward(x, grades) -> (logits (B,), grade logits (B, 5) or None)``: residual D with a projection grade
    head and, with ``config.d_classifier``, an auxiliary grade classifier on the same features (ACGAN's head:
    it gives G a direct grade signal, which the projection term alone gives late)."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        channels = len(config.channels)
        self.from_masks = EqualConv2d(channels, config.feature_channels(config.res), 1)
        blocks, resolution = [], config.res
        while resolution > 4:
            cin, cout = config.feature_channels(resolution), config.feature_channels(resolution // 2)
            blocks.append(DiscriminatorBlock(cin, cout))
            resolution //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = config.feature_channels(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4)
        self.out = EqualLinear(c4, 1)
        self.embed = nn.Embedding(NUM_GRADES, c4)
        self.scale = 1.0 / math.sqrt(c4)
        self.classifier = EqualLinear(c4, NUM_GRADES) if config.d_classifier else None

    def forward(self, x: torch.Tensor, grades: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.blocks(_lrelu(self.from_masks(x)))
        x = _lrelu(self.conv(minibatch_stddev(x)))
        features = _lrelu(self.fc(x.flatten(1)))
        logits = self.out(features).squeeze(1) + (self.embed(grades) * features).sum(dim=1) * self.scale
        return logits, None if self.classifier is None else self.classifier(features)
