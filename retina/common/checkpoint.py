"""Checkpoints: safetensors weights plus a JSON config. Never pickles.

A checkpoint ``NAME.safetensors`` carries its tensors and, in the safetensors header metadata, the same JSON
that is written beside it as ``NAME.json`` for people to read. The single file is written atomically, so a
process killed mid-save leaves the previous checkpoint intact. Non-tensor training state (optimiser
structure, RNG states, image counters, ADA p) is stored as JSON with its tensors flattened into the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from retina import __version__
from retina.common.errors import RetinaError
from retina.common.imageio import FILE_MODE, atomic_path, write_text_atomic
from retina.common.metadata import parse_json, validate_checkpoint_document

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar")
_METADATA_KEY = "retina"


# -- nested state <-> (tensors, JSON) ----------------------------------------------------------------
def flatten_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested structure by a reference; collect tensors under ``prefix``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, flatten_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        return {k: unflatten_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    """Every random generator a training run draws from, as checkpointable state."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(legacy=False),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- files ----------------------------------------------------------------------------------------
def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, config)`` for a path given as NAME, NAME.safetensors, NAME.json or a run folder.

    Any other existing file (``x.png``, ``labels.csv``) is refused under the name the user gave, rather than
    looked up as a ``.safetensors`` beside it that nobody mentioned."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise RetinaError(
            f"{path}: pickle checkpoints ({path.suffix}) are never loaded (they can run code); "
            "give a .safetensors checkpoint written by retina"
        )
    if path.is_dir():
        path = path / "last.safetensors"
    elif path.is_file() and path.suffix.lower() not in (".safetensors", ".json"):
        raise RetinaError(f"{path}: not a checkpoint (a {path.suffix} file); give NAME.safetensors written by "
                          "retina, or a run folder")
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def missing_checkpoint(given: str | Path, weights: Path, fix: str = "") -> RetinaError:
    """'checkpoint not found', naming the path the user gave (and the file looked for, when it differs)."""
    looked = "" if Path(given) == weights else f" (looked for {weights})"
    return RetinaError(f"{given}: checkpoint not found{looked}{'; ' + fix if fix else ''}")


def save_checkpoint(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write ``path.safetensors`` (+ ``path.json``) atomically.

    ``config`` must be JSON and should hold ``kind`` and ``arch`` so that loaders can refuse a checkpoint
    of another model; ``state`` may nest tensors (optimiser state, RNG), stored under ``state.*`` keys.
    """
    weights, config_path = checkpoint_paths(path)
    all_tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    document = {"retina_version": __version__, "config": config}
    if state is not None:
        document["state"] = flatten_state(state, "state", all_tensors)
    text = json.dumps(document, indent=2, sort_keys=False)
    with atomic_path(weights) as temporary:
        save_file(all_tensors, str(temporary), metadata={_METADATA_KEY: text})
        os.chmod(temporary, FILE_MODE)  # safetensors writes a new file of mode 0600: give it the usual umask mode
    write_text_atomic(config_path, text + "\n")
    return weights


class Checkpoint:
    """A loaded checkpoint: ``tensors`` (model weights), ``config``, ``state`` and the file's ``sha256``."""

    def __init__(self, path: str | Path, map_location: str | torch.device = "cpu"):
        weights, _ = checkpoint_paths(path)
        if not weights.is_file():
            raise missing_checkpoint(path, weights)
        try:
            with safe_open(str(weights), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(weights), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as error:
            raise RetinaError(
                f"{weights}: not a readable safetensors checkpoint ({error}); it may be truncated — "
                "use an earlier checkpoint or re-download it"
            ) from None
        if _METADATA_KEY not in metadata:
            raise RetinaError(f"{weights}: a safetensors file without retina's config; was it written by retina?")
        document = validate_checkpoint_document(parse_json(metadata[_METADATA_KEY], weights), weights)
        self.path = weights
        self.config: dict[str, Any] = document["config"]
        self.retina_version: str = document.get("retina_version", "?")
        self.state: dict[str, Any] = unflatten_state(document.get("state", {}), tensors)
        self.tensors = {k: v for k, v in tensors.items() if not k.startswith("state.")}
        self.sha256 = file_sha256(weights)

    def expect(self, kind: str, arch: str | None = None) -> Checkpoint:
        """Refuse a checkpoint of another kind of model (layout vs render) or architecture."""
        found_kind, found_arch = self.config.get("kind"), self.config.get("arch")
        if found_kind != kind or (arch is not None and found_arch != arch):
            wanted = f"{kind}/{arch}" if arch else kind
            article = "an" if wanted[:1].lower() in "aeiou" else "a"
            raise RetinaError(
                f"{self.path}: a {found_kind}/{found_arch} checkpoint, but {article} {wanted} checkpoint is needed here"
            )
        return self

    def submodule(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix.`` with the prefix removed (e.g. the ``g_ema`` of a GAN checkpoint)."""
        start = prefix + "."
        return {k[len(start):]: v for k, v in self.tensors.items() if k.startswith(start)}

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict with keys under ``prefix.`` (unwraps DistributedDataParallel)."""
    module = getattr(module, "module", module)
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load weights, turning a shape/key mismatch into a one-line error that names the checkpoint."""
    module = getattr(module, "module", module)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0][:200]
        raise RetinaError(
            f"{source}: weights do not fit this model ({first}); was it trained with another "
            "architecture, width or resolution?"
        ) from None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str | Path, kind: str, arch: str, config_type: type, model_type: type, what: str,
               device: torch.device | str = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """``model_type(config_type(**config["model"]))`` with the ``model.*`` weights of a ``kind``/``arch``
    checkpoint, in eval mode on ``device``; any mismatch is one line naming the file and ``what`` was expected."""
    checkpoint = Checkpoint(path).expect(kind, arch)
    try:
        config = config_type(**checkpoint.config["model"])
    except (KeyError, TypeError) as error:
        raise RetinaError(f"{checkpoint.path}: config does not describe {what} ({error})") from None
    model = model_type(config)
    load_module(model, checkpoint.submodule("model"), checkpoint.path)
    return model.to(device).eval(), checkpoint
