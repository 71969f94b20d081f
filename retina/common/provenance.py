"""Where an output came from: the command line, the software versions, the device and the code's git commit.

Written into every data set's retina.json and every run's config.json, so a folder found months later says how
to make it again. Synthetic photographs also carry PNG text chunks (:func:`synthetic_png_text`) so that an image
separated from its folder still says it is synthetic.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import retina

# The arguments of the retina command being run (set by retina.cli.main; None when used as a library).
_command: list[str] | None = None


def set_command(argv: list[str]) -> None:
    global _command
    _command = list(argv)


@functools.cache
def git_commit() -> str | None:
    """The commit of the retina checkout in use (None for an installed wheel or without git)."""
    source = Path(retina.__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return commit + ("+uncommitted changes" if dirty else "")


def environment(device: Any = None) -> dict[str, Any]:
    """Command line (None from the Python API), retina / torch / CUDA / Python versions, device, git commit."""
    import torch

    info: dict[str, Any] = {
        "command_line": shlex.join(["retina", *_command]) if _command is not None else None,
        "retina": retina.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
        "git_commit": git_commit(),
    }
    if device is not None:
        info["device"] = str(device)
        if str(device).startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def synthetic_png_text(grade: int | None, model: str, seed: int | None = None) -> dict[str, str]:
    """PNG text chunks of a synthetic image: ``Software``, ``Synthetic``, grade, model (and seed)."""
    text = {"Software": f"retina {retina.__version__}", "Synthetic": "true", "Model": model}
    if grade is not None:
        text["Grade"] = str(int(grade))
    if seed is not None:
        text["Seed"] = str(int(seed))
    return text
