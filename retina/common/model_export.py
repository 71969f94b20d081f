"""An inference copy of a training checkpoint: the weights sampling needs, nothing a resumed run needs.

A training checkpoint holds both networks, their optimisers, the EMA and RNG state; a user who renders or samples
needs only the generator's EMA weights (and, for DR-GAN, the per-grade grading space). ``retina runs export`` keeps
those, optionally in half precision (weights load into fp32 modules as they are copied), records where they came
from, and copies the training-set fingerprint beside them so that ``retina bench`` can still check the exported
model's outputs for test leaks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from retina.common.checkpoint import Checkpoint, checkpoint_paths, save_checkpoint
from retina.common.errors import RetinaError
from retina.common.imageio import write_text_atomic

# what each kind of model samples with, first match wins
INFERENCE_PREFIXES = {"render": (("g_ema", "space"), ("g", "space")), "layout": (("g_ema",), ("g",))}


def inference_tensors(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    kind = checkpoint.config.get("kind")
    if kind not in INFERENCE_PREFIXES:
        raise RetinaError(f"{checkpoint.path}: a {kind} checkpoint; export handles layout and render checkpoints")
    for prefixes in INFERENCE_PREFIXES[kind]:
        kept = {k: v for k, v in checkpoint.tensors.items() if k.split(".", 1)[0] in prefixes}
        if any(k.startswith(prefixes[0] + ".") for k in kept):
            return kept
    raise RetinaError(f"{checkpoint.path}: no generator weights ({' or '.join(p[0] for p in INFERENCE_PREFIXES[kind])}"
                      ".*) to export")


def export_model(source: str | Path, out: str | Path, half: bool = True) -> Path:
    """Write ``out`` (``.safetensors`` + ``.json`` + ``.fingerprint.json``) from the checkpoint ``source``."""
    checkpoint = Checkpoint(source)
    tensors = inference_tensors(checkpoint)
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    config: dict[str, Any] = dict(checkpoint.config)
    config["exported_from"] = {"checkpoint": checkpoint.path.name, "sha256": checkpoint.sha256,
                               "retina_version": checkpoint.retina_version,
                               "dtype": "float16" if half else "as trained"}
    weights, _ = checkpoint_paths(out)
    reference = config.get("training_set")
    if isinstance(reference, dict) and reference.get("fingerprint"):
        found = checkpoint.path.parent / reference["fingerprint"]
        if found.is_file():
            name = weights.name.removesuffix(".safetensors") + ".fingerprint.json"
            write_text_atomic(weights.parent / name, found.read_text("utf-8"))
            config["training_set"] = {**reference, "fingerprint": name}
        else:
            config["training_set"] = None
    return save_checkpoint(weights, tensors, json.loads(json.dumps(config)))
