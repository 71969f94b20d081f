"""LPIPS diversity: the mean LPIPS distance between random pairs of images of one set (higher = more diverse).

lpips ships only its linear heads; its AlexNet/VGG16 backbone would be downloaded by torchvision. We build the
network with a random backbone (``pnet_rand=True``: no download) and load the backbone from the weights registry
(size and sha256 checked, ``weights_only`` unpickling). ``random_backbone=True`` (tests) keeps the random backbone and
the metric is then named "LPIPS-random-backbone (not a real LPIPS)".
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from retina.common.errors import RetinaError

_BACKBONES = {"alex": ("alexnet", "alexnet"), "vgg": ("vgg16", "vgg16")}  # lpips net -> (registry name, torchvision)
RANDOM_NAME = "LPIPS-random-backbone (not a real LPIPS)"


def build_lpips(net: str = "alex", weights_dir: str | Path | None = None, random_backbone: bool = False):
    """An ``lpips.LPIPS`` module in eval mode, backbone from our verified file unless ``random_backbone``."""
    import lpips
    import torchvision

    from retina.eval.weights import load_torchvision_weights

    if net not in _BACKBONES:
        raise RetinaError(f"LPIPS backbone '{net}' not supported; use {' or '.join(_BACKBONES)}")
    registry_name, torchvision_name = _BACKBONES[net]
    state = None if random_backbone else load_torchvision_weights(registry_name, weights_dir)  # fail before building
    with warnings.catch_warnings():  # lpips calls torchvision with the deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if state is not None:
        reference = getattr(torchvision.models, torchvision_name)(weights=None)
        reference.load_state_dict(state)
        # lpips's slices hold torchvision's `features` layers under their original indices as child names.
        for slice_module in model.net.children():
            for index, layer in slice_module.named_children():
                layer.load_state_dict(reference.features[int(index)].state_dict())
    return model.eval()


@torch.no_grad()
def lpips_diversity(
    images: torch.Tensor,
    pairs: int = 100,
    seed: int = 0,
    net: str = "alex",
    weights_dir: str | Path | None = None,
    random_backbone: bool = False,
    device: torch.device | str = "cpu",
    model=None,
) -> tuple[str, float]:
    """``(metric name, mean LPIPS)`` over random pairs of distinct images; ``images`` float ``(N, 3, S, S)`` in
    ``[-1, 1]``."""
    n = len(images)
    if n < 2:
        raise RetinaError(f"LPIPS diversity needs at least 2 images, got {n}")
    model = (model or build_lpips(net, weights_dir, random_backbone)).to(device)
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(0, n, (pairs,), generator=generator)
    second = (first + torch.randint(1, n, (pairs,), generator=generator)) % n
    values = []
    for start in range(0, pairs, 16):
        a = images[first[start : start + 16]].to(device)
        b = images[second[start : start + 16]].to(device)
        values.append(model(a, b).flatten().cpu())
    name = RANDOM_NAME if random_backbone else f"LPIPS-{net}"
    return name, float(torch.cat(values).mean())
