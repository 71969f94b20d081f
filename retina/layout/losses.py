"""GAN losses for the layout models: non-saturating adversarial loss with one-sided label smoothing,
lazy R1 on reals (Mescheder et al. 2018; lazy form from StyleGAN2 sec. 3.1), the auxiliary grade loss and
StyleGAN2's path-length regulariser (Karras et al. 2020 sec. 3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
    """Non-saturating D loss; reals are pushed toward ``smoothing`` (0.9: Son et al.), fakes toward 0."""
    real = smoothing * F.softplus(-real_logits) + (1.0 - smoothing) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient norm of D at the reals (``real_inputs`` must require grad)."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return gradient.square().sum(dim=(1, 2, 3)).mean()


def grade_loss(grade_logits: torch.Tensor | None, grades: torch.Tensor) -> torch.Tensor:
    """Auxiliary-classifier cross-entropy (zero for discriminators without a classifier head)."""
    if grade_logits is None:
        return torch.zeros((), device=grades.device)
    return F.cross_entropy(grade_logits.float(), grades)


def path_length_penalty(
    images: torch.Tensor, ws: torch.Tensor, running_mean: torch.Tensor, decay: float, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(penalty (B,), path lengths (B,) detached)``. ``images`` come from per-layer styles ``ws``
    (B, num_ws, w_dim), which must be part of the graph; ``noise`` is N(0, 1) / sqrt(H * W) of the images' shape.
    The path length is |J_w^T y| for a random image-space direction y, averaged over layers as in
    stylegan2-ada-pytorch; the penalty pulls it to its running mean (moved by ``decay`` towards this batch's
    mean, the step the caller stores)."""
    (gradients,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    lengths = gradients.square().sum(dim=2).mean(dim=1).sqrt()
    target = running_mean.lerp(lengths.mean(), decay)
    return (lengths - target).square(), lengths.detach()
