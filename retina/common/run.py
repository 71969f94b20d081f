"""A training run folder: config, JSONL log, sample grids, ``last``/``best`` checkpoints, and resume.

::

    RUN/
      config.json          the full training configuration (dataclass) and code version
      log.jsonl            one JSON record per logged step
      tensorboard/         the same numbers (and sample grids) as TensorBoard events: tensorboard --logdir RUN
      samples/             image grids written during training
      last.safetensors     (+ last.json)  everything needed to resume
      best.safetensors     (+ best.json)  the best so far by the run's quality metric
      fingerprint.json     content hashes of the training rows (retina.common.fingerprint); every checkpoint's
                           config references it under ``training_set``
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from retina import __version__
from retina.common.checkpoint import Checkpoint, save_checkpoint
from retina.common.errors import RetinaError
from retina.common.imageio import write_text_atomic
from retina.common.output import OutputLock, check_output, make_folder
from retina.common.provenance import environment

# What a log record counts progress in: its TensorBoard step (images shown for the layout trainers).
STEP_KEYS = ("nimg", "step", "kimg", "images_seen", "time")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def step_of(record: dict[str, Any]) -> int | None:
    if is_number(record.get("nimg")):  # the layout trainer: snapshots and steps on one axis, images shown
        return int(record["nimg"])
    if is_number(record.get("step")):
        return int(record["step"])
    if is_number(record.get("kimg")):
        return int(round(record["kimg"] * 1000))
    return None


class RunFolder:
    """A run folder, checked (a usable --out, not another run) and locked (``RUN/.lock``) while this process
    trains in it, so that a second run on the same folder refuses in one line instead of interleaving
    checkpoints. ``training_set``: the fingerprint of the rows trained on (retina.common.fingerprint), written as
    ``fingerprint.json``. A resumed run must train on the same rows, or its checkpoints would claim a training set
    they did not see alone: that is refused before anything is written."""

    def __init__(self, path: str | Path, config: dict[str, Any], resume: bool = False, is_main: bool = True,
                 training_set: dict[str, Any] | None = None):
        # a resumed run may be named `.` from inside it; a new one must be a usable new folder
        self.path = Path(path) if resume else check_output(path, "--out")
        self.is_main = is_main
        self.config = config
        last = self.path / "last.safetensors"
        if resume:
            if not self.path.is_dir():
                raise RetinaError(f"{self.path}: run folder not found; give the --out of an earlier run to --resume")
            if not last.is_file():
                raise RetinaError(f"{self.path}: nothing to resume (no last.safetensors); start without --resume")
        elif last.is_file():
            raise RetinaError(
                f"{self.path}: a run already exists here; pass --resume {self.path} or choose another --out"
            )
        if training_set is not None:
            self._check_training_set(training_set)
        if is_main:
            make_folder(self.path / "samples")
            self.lock = OutputLock(self.path)
            document = {"retina_version": __version__, "environment": environment(config.get("device")),
                        "config": config}
            write_text_atomic(self.path / "config.json", json.dumps(document, indent=2) + "\n")
            if training_set is not None:
                from retina.common.fingerprint import write_fingerprint

                write_fingerprint(self.path, training_set)
        self._start = time.time()
        self._writer: Any = None  # the TensorBoard writer, made on the first log

    def _check_training_set(self, document: dict[str, Any]) -> None:
        from retina.common.fingerprint import FINGERPRINT_FILE

        existing = self.path / FINGERPRINT_FILE
        if not existing.is_file():
            return
        try:
            before = json.loads(existing.read_text("utf-8")).get("sha256")
        except (json.JSONDecodeError, UnicodeDecodeError):
            before = None
        if before is not None and before != document["sha256"]:
            raise RetinaError(f"{self.path}: this run trained on other rows (fingerprint {before[:12]}, now "
                              f"{document['sha256'][:12]}); resume on the same training set or start a new --out")

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to log.jsonl; its numbers also go to TensorBoard (``RUN/tensorboard``)."""
        if not self.is_main:
            return
        record = {"time": round(time.time() - self._start, 3), **record}
        with open(self.path / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        step = step_of(record)
        scalars = {k: v for k, v in record.items() if k not in STEP_KEYS and is_number(v)}
        if step is not None and scalars:
            writer = self._tensorboard()
            for key, value in scalars.items():
                writer.add_scalar(key, float(value), step)
            writer.flush()

    def add_image(self, tag: str, picture: Any, step: int) -> None:
        """A sample grid (uint8 (H, W, 3)) into TensorBoard beside its PNG in samples/."""
        if self.is_main:
            writer = self._tensorboard()
            writer.add_image(tag, picture, step, dataformats="HWC")
            writer.flush()

    def _tensorboard(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path / "tensorboard"))
        return self._writer

    def save(self, name: str, tensors: dict, config: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        if self.is_main:
            save_checkpoint(self.path / name, tensors, config, state)

    def drop_records_after(self, key: str, last: int) -> None:
        """Forget log records whose ``key`` exceeds ``last`` (a resumed run's checkpoint): steps logged after the
        last checkpoint of a killed run are trained again, and the curve must not hold them twice. Records without
        the key stay; an unreadable (half-written) line goes."""
        log = self.path / "log.jsonl"
        if not self.is_main or not log.is_file():
            return

        def position(line: str) -> int:
            try:
                return int(json.loads(line).get(key, 0))
            except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
                return last + 1

        kept = [line for line in log.read_text("utf-8").splitlines() if line.strip() and position(line) <= last]
        write_text_atomic(log, "".join(line + "\n" for line in kept))

    def load_last(self, kind: str | None = None) -> Checkpoint:
        """The run's last checkpoint; with ``kind``, a run of another kind (a layout run given to the renderer's
        --resume) is refused by name."""
        last = Checkpoint(self.path / "last.safetensors")
        return last.expect(kind) if kind is not None else last
