"""SIGTERM handled like Ctrl-C: Slurm, ``timeout`` and ``docker stop`` send SIGTERM, which by default kills the
process on the spot (exit -15, partial output left). :func:`handled` turns it into :class:`Terminated`, a
``KeyboardInterrupt``, so every ``with``/``finally`` that cleans up after Ctrl-C cleans up after SIGTERM too,
and the CLI exits 143 with one line.

A trainer runs its loop through :func:`checkpointed_steps`: a signal that arrives mid-step is held until the
step has finished, then the trainer's checkpoint is written (a consistent one, that resumes bit-exactly) and
the interrupt raised.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


_pending: list[int] = []
_deferring = [0]
_received: list[int] = []  # the signal behind the interrupt: typer turns every KeyboardInterrupt into exit 130


def _raise_for(signum: int) -> None:
    _received[:] = [signum]
    if signum == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt


def _handler(signum: int, frame: FrameType | None) -> None:
    if _deferring[0]:
        _pending.append(signum)
        return
    _raise_for(signum)


@contextmanager
def handled() -> Iterator[None]:
    """Route SIGTERM (and SIGINT) through :func:`_handler` inside the block (main thread only), then restore the
    handlers that were there (the CLI also runs in-process, under pytest)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring[0] = 0  # a loop abandoned by an exception in an earlier in-process run leaves nothing held
    _pending.clear()
    _received.clear()
    previous = {signum: signal.signal(signum, _handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def checkpointed_steps(more: Callable[[], bool], checkpoint: Callable[[], None]) -> Iterator[None]:
    """A training loop, ``for _ in checkpointed_steps(lambda: step < total, save_last):``, whose body runs with
    Ctrl-C/SIGTERM held; one that arrives is acted on between steps: ``checkpoint()`` runs, then the interrupt is
    raised, so that a preempted job (Slurm, ``docker stop``) resumes from the step it had reached."""
    _deferring[0] += 1
    try:
        while more():
            yield
            if _pending:
                signum = _pending[0]
                _pending.clear()
                checkpoint()
                _raise_for(signum)
    finally:
        _deferring[0] -= 1


def exit_code(interrupt: BaseException | None = None) -> tuple[int, str]:
    """The exit status and the one line for an interrupt (SIGTERM: 143, Ctrl-C/SIGINT: 130)."""
    if isinstance(interrupt, Terminated) or _received == [signal.SIGTERM]:
        return EXIT_SIGTERM, "terminated (SIGTERM)"
    return EXIT_SIGINT, "interrupted"
