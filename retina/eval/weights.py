"""The one registry of pretrained weight files other packages would download at run time.

Every file is looked up in ``--weights-dir``, then ``$RETINA_WEIGHTS_DIR``, then ``$TORCH_HOME/hub/checkpoints`` (where
torchvision and lpips look), and checked (size, sha256) before anything loads it. Nothing is ever downloaded implicitly:
``retina weights fetch NAME`` (or :func:`fetch_weights`) downloads, verifies and renames atomically.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from retina.common.errors import RetinaError
from retina.common.imageio import atomic_path

ENV_VAR = "RETINA_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    url: str
    sha256: str  # full 64-hex digest, or the prefix torchvision embeds in the file name when that is all we know
    size: int | None  # bytes; None when not known exactly
    used_by: str

    @property
    def full_digest(self) -> bool:
        return len(self.sha256) == 64


_TORCHVISION = "https://download.pytorch.org/models/"

# Digests: full sha256 where a published full digest was found, otherwise the prefix in torchvision's file name
# (torchvision itself checks only that prefix). Sizes only where the exact byte count is published.
REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            "inception-fid",
            "inception-2015-12-05.pt",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
            95_607_719,
            "FID/KID (clean-fid's TorchScript Inception, `retina eval fidelity --metrics fid,kid`)",
        ),
        WeightFile(
            "alexnet",
            "alexnet-owt-7be5be79.pth",
            _TORCHVISION + "alexnet-owt-7be5be79.pth",
            "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            None,
            "LPIPS diversity (lpips net='alex', the default)",
        ),
        WeightFile(
            "vgg16",
            "vgg16-397923af.pth",
            _TORCHVISION + "vgg16-397923af.pth",
            "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            None,
            "LPIPS diversity (lpips net='vgg')",
        ),
        WeightFile(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            _TORCHVISION + "vgg19-dcbb9e9d.pth",
            "dcbb9e9d",
            None,
            "perceptual / feature-matching losses of the renderers",
        ),
        WeightFile(
            "resnet50",
            "resnet50-11ad3fa6.pth",
            _TORCHVISION + "resnet50-11ad3fa6.pth",
            "11ad3fa6",
            None,
            "grading benchmark backbone (torchvision IMAGENET1K_V2)",
        ),
        WeightFile(
            "inception_v3",
            "inception_v3_google-0cc3c7bd.pth",
            _TORCHVISION + "inception_v3_google-0cc3c7bd.pth",
            "0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef",
            108_949_747,
            "Lesion-Net contracting path, grading benchmark backbone",
        ),
    )
}

# path -> (mtime_ns, size) of files whose digest already matched: hashing 500 MB on every call would dominate.
_verified: dict[str, tuple[int, int]] = {}


def entry(name: str) -> WeightFile:
    if name not in REGISTRY:
        raise RetinaError(f"unknown weights '{name}'; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def torch_hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def search_dirs(weights_dir: str | Path | None = None) -> list[Path]:
    """The folders searched, in order: ``weights_dir``, ``$RETINA_WEIGHTS_DIR``, ``$TORCH_HOME/hub/checkpoints``."""
    dirs = [Path(weights_dir)] if weights_dir else []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(torch_hub_checkpoints())
    return list(dict.fromkeys(dirs))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, weights: WeightFile) -> None:
    """Raise a one-line :class:`RetinaError` unless ``path`` has the registered size and digest."""
    stat = path.stat()
    key = str(path.resolve())
    if _verified.get(key) == (stat.st_mtime_ns, stat.st_size):
        return
    if weights.size is not None and stat.st_size != weights.size:
        raise RetinaError(
            f"{path}: {stat.st_size} bytes, expected {weights.size} for {weights.name}; "
            f"the file is truncated or another file: delete it and run `retina weights fetch {weights.name}`"
        )
    digest = _sha256(path)
    if not digest.startswith(weights.sha256):
        raise RetinaError(
            f"{path}: sha256 {digest[:16]}... does not match {weights.sha256[:16]}... for {weights.name}; "
            f"delete it and run `retina weights fetch {weights.name}` (or download {weights.url})"
        )
    _verified[key] = (stat.st_mtime_ns, stat.st_size)


def locate(name: str, weights_dir: str | Path | None = None) -> Path | None:
    """The first candidate file for ``name`` in the search folders, unverified; None when there is none."""
    weights = entry(name)
    for folder in search_dirs(weights_dir):
        candidate = folder / weights.filename
        if candidate.is_file():
            return candidate
    return None


def find_weights(name: str, weights_dir: str | Path | None = None) -> Path:
    """Path of the verified weight file ``name``, or a one-line error saying what to fetch and where to put it."""
    weights = entry(name)
    path = locate(name, weights_dir)
    if path is None:
        searched = ", ".join(str(d) for d in search_dirs(weights_dir))
        raise RetinaError(
            f"weights '{name}' not found: put {weights.filename} ({weights.url}) in one of [{searched}] "
            f"(or --weights-dir DIR / ${ENV_VAR}), or run `retina weights fetch {name}`"
        )
    verify_file(path, weights)
    return path


def fetch_weights(name: str, dest_dir: str | Path | None = None) -> Path:
    """Download ``name`` into ``dest_dir`` (default ``$TORCH_HOME/hub/checkpoints``): temp file, verify, rename."""
    weights = entry(name)
    dest = Path(dest_dir) if dest_dir else torch_hub_checkpoints()
    target = dest / weights.filename
    from torch.hub import download_url_to_file

    try:
        with atomic_path(target) as temporary:
            # torch.hub's downloader (progress bar, its own temporary file); our size + sha256 check follows.
            download_url_to_file(weights.url, str(temporary), progress=True)
            verify_file(temporary, weights)
    except OSError as error:  # URLError is an OSError
        raise RetinaError(f"could not download {weights.url} ({error}); fetch it by hand into {dest}") from None
    return target


def load_torchvision_weights(name: str, weights_dir: str | Path | None = None) -> dict:
    """A verified torchvision state dict; ``weights_only=True`` so the file cannot run code when unpickled."""
    import torch

    path = find_weights(name, weights_dir)
    return torch.load(path, weights_only=True, map_location="cpu")
