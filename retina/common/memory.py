"""Memory needed by a ``--batch``/``--res`` choice, estimated before anything is allocated or written.

``layout train --batch 100000`` used to be killed by the OOM killer after creating its run folder, and
``generate --res 100000`` to allocate 9 GiB before dying. The commands now call :func:`require_memory` first:
a request that does not fit is refused with the estimate, what is available, and a batch (or resolution)
that would fit.

The per-pixel costs are measured peaks (``/usr/bin/time -v``, CPU, this repository), rounded up:

* sampling (phantom, layout prior, procedural and learned rendering): 2048 px phantom +566 MB over the
  interpreter, 135 B/pixel; ``generate --res 2048 --batch 2`` +1.07 GB, 128 B/pixel/sample -> 160 B.
* layout GAN training: 64 px, width 8 (channel base 2048), batch 64 -> 256: +22.6 MB per sample, 94 B per
  feature-map value summed over the generator's resolutions -> 120 B.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch

from retina.common.errors import RetinaError

SAMPLING_BYTES_PER_PIXEL = 160
TRAINING_BYTES_PER_VALUE = 120
HEADROOM = 0.8  # leave a fifth of what is free to the rest of the machine


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory on ``device``: CUDA's free memory, else the kernel's MemAvailable (``RETINA_MEMORY_BYTES``
    overrides both, for machines whose limit the kernel does not report, such as cgroups)."""
    override = os.environ.get("RETINA_MEMORY_BYTES")
    if override:
        return int(override)
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _gib(count: float) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**27 else f"{count / 2**20:.0f} MiB"


def sampling_bytes(batch: int, res: int) -> int:
    """Peak memory of drawing ``batch`` layouts/images of ``res`` pixels at a time."""
    return batch * res * res * SAMPLING_BYTES_PER_PIXEL


def layout_training_bytes(batch: int, res: int, feature_channels: Callable[[int], int]) -> int:
    """Peak memory of one layout-GAN step: feature maps of every resolution 4..res (``feature_channels(r)``
    channels at side r), for G and D, per sample."""
    values = 0
    side = 4
    while side <= res:
        values += max(1, feature_channels(side)) * side * side
        side *= 2
    return batch * values * TRAINING_BYTES_PER_VALUE


def require_memory(needed: int, per_item: int, what: str, batch: int, res: int, batch_option: str | None = "--batch",
                   res_option: str = "--res", device: torch.device | str = "cpu") -> None:
    """Refuse ``needed`` bytes when they exceed what is free, suggesting a ``batch_option`` (or, when even one
    item does not fit, a ``res_option``) that would fit. ``per_item``: bytes per batch element;
    ``batch_option`` None: the command draws one item at a time."""
    free = available_bytes(device)
    budget = int(free * HEADROOM)
    if needed <= budget:
        return
    fits = budget // max(per_item, 1)
    if fits >= 1 and batch > 1 and batch_option is not None:
        suggestion = f"{batch_option} {min(fits, batch - 1)}"
    else:
        scale = math.sqrt(budget / max(per_item, 1))
        smaller = 2 ** max(3, int(math.floor(math.log2(max(res * scale, 8)))))
        while smaller >= res and smaller > 8:
            smaller //= 2
        suggestion = f"{res_option} {smaller}" + (
            f" with {batch_option} 1" if batch > 1 and batch_option is not None else "")
    given = f"{batch_option} {batch} " if batch_option is not None else ""
    raise RetinaError(f"{what} at {given}{res_option} {res} needs about {_gib(needed)} but {_gib(free)} is free; "
                      f"use {suggestion}")
