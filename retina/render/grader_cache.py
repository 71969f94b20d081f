"""The renderer's grading network is trained once per training set and reused.

A trained grader is a safetensors checkpoint (``kind: grader``) whose JSON says its backbone, the weights it started
from, its held-out accuracy, kappa and stopping step, and the fingerprint of the images it saw. ``retina render train``
looks it up in ``$RETINA_CACHE/graders/`` (default ``~/.cache/retina/graders/``) under a key made of that fingerprint
and the grader's settings, so a second run on the same set (coarse then fine, an ablation, a smoke test) skips the
training; ``--grader-checkpoint PATH`` names one explicitly.

The key's fingerprint is the sha256 over the sorted (grade, content digest of the photograph, as the training-set
fingerprints of retina/common/fingerprint.py) of the training and held-out rows the grader uses: a changed photograph
or grade is a different set; a renamed or re-encoded copy is the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from retina.common.canonical import CanonicalDataset, Sample
from retina.common.checkpoint import Checkpoint, load_module, module_tensors, save_checkpoint
from retina.common.fingerprint import ContentIndex
from retina.render.grading import Grader, build_grader

CACHE_ENV = "RETINA_CACHE"


def cache_dir() -> Path:
    """``$RETINA_CACHE/graders``, else ``$XDG_CACHE_HOME/retina/graders``, else ``~/.cache/retina/graders``."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "retina")
    return Path(root) / "graders"


def images_fingerprint(index: CanonicalDataset, samples: Iterable[Sample]) -> str:
    """sha256 over the sorted (grade, photograph content digest) of ``samples``."""
    content = ContentIndex(index)
    rows = sorted(f"{-1 if s.grade is None else s.grade}:{content.image(s.name)}" for s in samples)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def cache_path(fingerprint: str, settings: dict[str, Any]) -> Path:
    """Where the grader trained with ``settings`` on the images with ``fingerprint`` is kept."""
    key = hashlib.sha256(json.dumps({"images": fingerprint, **settings}, sort_keys=True).encode()).hexdigest()
    return cache_dir() / f"{settings['arch']}-{key[:24]}.safetensors"


def save_grader(path: str | Path, grader: Grader, metadata: dict[str, Any]) -> Path:
    """Write the grader (atomically) with its ``metadata`` as the checkpoint's JSON config."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    config = {"kind": "grader", "arch": grader.arch, "dim": grader.dim, **metadata}
    return save_checkpoint(path, module_tensors("grader", grader), config)


def load_grader(path: str | Path) -> tuple[Grader, dict[str, Any]]:
    """A grader checkpoint -> (grader in eval mode, its config); refuses other checkpoints in one line."""
    checkpoint = Checkpoint(path).expect("grader")
    grader = build_grader(checkpoint.config["arch"], load_weights=False)
    load_module(grader, checkpoint.submodule("grader"), checkpoint.path)
    return grader.eval(), {**checkpoint.config, "checkpoint": str(checkpoint.path)}
