"""The output-folder guard every writer goes through: a usable ``--out``, one writer at a time, no leftovers.

* :func:`check_output` refuses, in one line and before anything is computed, an ``--out`` that names the
  current or parent folder, an existing file, or a place where no folder can be made (under a file, in
  ``/proc``, in a read-only place).
* :class:`OutputLock` is an exclusive ``flock`` on ``FOLDER/.lock`` (with the holder's pid in it): a second
  run on the same output refuses in one line instead of deleting or mixing the first one's files. The kernel
  drops the lock when a process dies, even by SIGKILL, so a killed run never blocks the next.
* :func:`make_folder` creates a folder with its missing parents and remembers which it made, so that an
  aborted run can remove them again (:func:`remove_created`).
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retina.common.errors import RetinaError

LOCK_NAME = ".lock"


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or ".")


def check_output(path: str | Path, option: str = "--out", folder: bool = True) -> Path:
    """Refuse an output path that cannot be (or must not be) written; returns it as a Path."""
    path = Path(path)
    given = f"{option} {path}" if option else str(path)
    if path.name in ("", ".", "..") or path.resolve() == Path.cwd().resolve():
        raise RetinaError(f"{given}: names an existing working folder, not a new output; give a new "
                          f"folder name, e.g. {option} out")
    if folder and path.exists() and not path.is_dir():
        raise RetinaError(f"{given}: is a file, not a folder (even --overwrite does not replace a file); "
                          f"choose another {option or 'path'}")
    if not folder and path.is_dir():
        raise RetinaError(f"{given}: is a folder; give a file name inside it")
    base = _first_existing(path.parent.absolute())
    if not base.is_dir():
        raise RetinaError(f"{given}: {base} is a file, so nothing can be created under it; choose another "
                          f"{option or 'path'}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise RetinaError(f"{given}: {base} is not writable; choose a folder you can write to")
    return path


def make_folder(path: str | Path, option: str = "--out", shown: str | Path | None = None) -> list[Path]:
    """``mkdir -p`` that turns failure into one line naming ``option shown`` (default: the path); returns the
    folders it created, deepest last."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        remove_created(missing)
        where = f"{option} {shown}: cannot create {path}" if shown is not None else f"{option} {path}: cannot create it"
        raise RetinaError(f"{where} ({error.strerror or error}); choose a folder you can write to") from None
    return missing


def remove_created(created: list[Path]) -> None:
    """Remove folders made by :func:`make_folder`, deepest first, as long as they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break


_held: dict[Path, OutputLock] = {}


class OutputLock:
    """An exclusive lock on ``folder/.lock``. Re-entrant within a process (a resumed trainer in the same
    process, as the tests run it, takes its own lock again); refused while another process holds it."""

    def __init__(self, folder: str | Path, out: str | Path | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        key = self.path.absolute()
        self.out = Path(out) if out is not None else self.folder
        self._handle = None
        if key in _held:
            self._handle = _held[key]._handle
            self._shared = True
            return
        self._shared = False
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RetinaError(f"{self.out}: another retina run (pid {holder}) is writing it right now; wait for it "
                              "to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        _held[key] = self

    def moved(self, folder: str | Path) -> None:
        """The locked folder was renamed to ``folder`` (the lock's inode went with it)."""
        _held.pop(self.path.absolute(), None)
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        _held[self.path.absolute()] = self

    def release(self) -> None:
        if self._shared or self._handle is None:
            return
        self.path.unlink(missing_ok=True)
        _held.pop(self.path.absolute(), None)
        self._handle.close()
        self._handle = None


@contextmanager
def staged_folder(out: str | Path, overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """A locked ``OUT.partial`` that becomes ``OUT`` only when the block completes; on an error (Ctrl-C, SIGTERM
    included) it is removed with any parent folder it made. For writers of other layouts than the canonical
    one (:class:`retina.common.canonical.CanonicalWriter` keeps its own, resumable, partial folder)."""
    out = check_output(out, option)
    if out.exists() and not overwrite:
        raise RetinaError(f"{out}: already exists; choose another {option} or pass --overwrite")
    partial = check_output(out.with_name(out.name + ".partial"), option)
    created = make_folder(partial, option, shown=out)
    lock = OutputLock(partial, out)
    try:
        for entry in partial.iterdir():  # what a killed earlier run left
            if entry.name != LOCK_NAME:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        yield partial
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
        lock.moved(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        remove_created(created)
        raise
    finally:
        lock.release()


@atexit.register
def release_all() -> None:
    """Drop every lock this process holds (the CLI calls it when a command returns: a run folder stays locked for
    the whole command, and no longer, also when commands run in-process one after another)."""
    for lock in list(_held.values()):
        lock.release()
