"""A training run folder: config, JSONL log, sample grids, ``last``/``best`` checkpoints, and resume.

::

    RUN/
      config.json          the full training configuration (dataclass) and code version
      log.jsonl            one JSON record per logged step
      samples/             image grids written during training
      last.safetensors     (+ last.json)  everything needed to resume
      best.safetensors     (+ best.json)  the best so far by the run's quality metric
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from retina import __version__
from retina.common.checkpoint import Checkpoint, save_checkpoint
from retina.common.errors import RetinaError
from retina.common.imageio import write_text_atomic
from retina.common.provenance import environment


class RunFolder:
    def __init__(self, path: str | Path, config: dict[str, Any], resume: bool = False, is_main: bool = True):
        self.path = Path(path)
        self.is_main = is_main
        self.config = config
        last = self.path / "last.safetensors"
        if resume:
            if not last.is_file():
                raise RetinaError(f"{self.path}: nothing to resume (no last.safetensors); start without --resume")
        elif last.is_file():
            raise RetinaError(
                f"{self.path}: a run already exists here; pass --resume {self.path} or choose another --out"
            )
        if is_main:
            (self.path / "samples").mkdir(parents=True, exist_ok=True)
            document = {"retina_version": __version__, "environment": environment(config.get("device")),
                        "config": config}
            write_text_atomic(self.path / "config.json", json.dumps(document, indent=2) + "\n")
        self._start = time.time()

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        record = {"time": round(time.time() - self._start, 3), **record}
        with open(self.path / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def save(self, name: str, tensors: dict, config: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        if self.is_main:
            save_checkpoint(self.path / name, tensors, config, state)

    def load_last(self) -> Checkpoint:
        return Checkpoint(self.path / "last.safetensors")
