"""The models that ship inside the package: a layout GAN and a renderer trained on public photographs (IDRiD, with
DRIVE-trained vessel pseudo-labels; see MODEL_CARD.md and experiments/public_idrid/), used by ``retina render``,
``retina generate`` and :meth:`retina.Pipeline.load` unless told otherwise.

A model choice on the command line or in the API is one of

* ``shipped`` (the default): the packaged model of that kind, or the procedural one when the package has none;
* ``procedural``: the hand-written layout prior / renderer (instant, no weights);
* a checkpoint path (a ``.safetensors`` file or a run folder).

``RETINA_MODELS=procedural`` in the environment makes ``procedural`` the default instead (quick smoke runs, CI
of code that does not care which model draws, as this project's own test suite does).
"""

from __future__ import annotations

import os
from pathlib import Path

from retina.common.errors import RetinaError

MODELS_DIR = Path(__file__).resolve().parent / "models"
KINDS = ("layout", "render")
SHIPPED, PROCEDURAL = "shipped", "procedural"
DEFAULT_ENV = "RETINA_MODELS"


def shipped_checkpoint(kind: str) -> Path | None:
    """The packaged checkpoint of ``kind`` (``layout`` or ``render``), or None when the package has none."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    path = MODELS_DIR / f"{kind}.safetensors"
    return path if path.is_file() else None


def resolve_model(choice: str | Path | None, kind: str, option: str) -> Path | None:
    """A model choice -> the checkpoint to load, or None for the procedural model.

    ``None`` gives the default (``$RETINA_MODELS``, else the packaged model, else procedural when the package has
    none), ``"shipped"`` the packaged model (an error when there is none), ``"procedural"`` the
    hand-written one, anything else is a checkpoint file or run folder (``option`` names the flag in errors).
    """
    if choice is None:
        return shipped_checkpoint(kind) if default_choice() == SHIPPED else None
    if str(choice) == SHIPPED:
        found = shipped_checkpoint(kind)
        if found is None:
            raise RetinaError(f"{option} {SHIPPED}: this installation has no packaged {kind} model "
                              f"({MODELS_DIR / (kind + '.safetensors')}); reinstall retina, or give a checkpoint or "
                              f"'{PROCEDURAL}'")
        return found
    if str(choice) == PROCEDURAL:
        return None
    return Path(choice)  # its loader refuses pickles and names a missing file


def default_choice() -> str:
    """``shipped``, unless ``$RETINA_MODELS`` says ``procedural``."""
    value = os.environ.get(DEFAULT_ENV, SHIPPED).strip().lower() or SHIPPED
    if value not in (SHIPPED, PROCEDURAL):
        raise RetinaError(f"${DEFAULT_ENV}={value}: expected '{SHIPPED}' or '{PROCEDURAL}'")
    return value


def describe(checkpoint: str | Path | None) -> str:
    """How a summary line names the model behind a weights file: 'shipped', 'procedural' or the file's path."""
    if checkpoint is None:
        return PROCEDURAL
    checkpoint = Path(checkpoint)
    if checkpoint.resolve().parent == MODELS_DIR:
        return f"{SHIPPED} {checkpoint.stem} model"
    return str(checkpoint)
