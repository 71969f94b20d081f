"""Shared test fixtures. Everything is CPU-sized: 32-64 px, widths of 8-16, a few steps."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("RETINA_WEIGHTS_DIR", "/nonexistent-retina-weights")
# trained graders are cached per training set (retina/render/grader_cache.py): never in the user's ~/.cache
os.environ.setdefault("RETINA_CACHE", tempfile.mkdtemp(prefix="retina-test-cache-"))
# the models packaged with retina are the CLI's default; tests that are about something else draw with the instant
# procedural ones (tests/test_shipped_models.py sets it back to "shipped")
os.environ.setdefault("RETINA_MODELS", "procedural")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _single_thread():
    # Tiny networks on a shared machine: a second intra-op thread only waits (~10x slower under load).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One torch thread for the duration of a test (opt in with `pytest.mark.usefixtures("one_thread")`)."""
    yield from _single_thread()


@pytest.fixture(scope="module")
def one_thread_module():
    """One torch thread for a whole module, module-scoped fixtures included."""
    yield from _single_thread()


@pytest.fixture(scope="module")
def phantom(request, tmp_path_factory):
    """A tiny phantom canonical set (32 px, all grades, seed 0); a module sets PHANTOM_N for its size (default 10)."""
    from retina.phantom.dataset import write_phantom

    n = getattr(request.module, "PHANTOM_N", 10)
    return write_phantom(tmp_path_factory.mktemp("phantom") / "ph", n=n, size=32, grades=[0, 1, 2, 3, 4], seed=0)


@pytest.fixture
def cli_error(capsys):
    """Run the CLI expecting a refusal: exit status 2 and a single ``error: ...`` line on stderr, which it returns."""

    def run(argv: list[str]) -> str:
        from retina.cli import main

        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]

    return run
