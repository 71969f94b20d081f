"""The training data order: one permutation per epoch, a pure function of (seed, epoch), that a resumed run can
enter part-way."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (one replica in a single process too) whose epoch can start after the samples a run
    has already trained on: ``set_epoch(epoch, skip)`` drops the first ``skip`` indices of this rank's share of
    that epoch's permutation. A resumed run thus sees the same batches as an uninterrupted one, where a plain
    DistributedSampler would replay the epoch from its start. ``len`` stays the whole epoch's share."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        if not 0 <= skip <= self.num_samples:
            raise ValueError(f"cannot skip {skip} of an epoch's {self.num_samples} samples")
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)
