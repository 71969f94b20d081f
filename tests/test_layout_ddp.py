"""`retina layout train` under torchrun with 2 CPU processes (gloo): finishes, only rank 0 writes, and the
losses match a single process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from retina.cli import main
from retina.common.checkpoint import Checkpoint

ARGS = ["layout", "train", "--res", "8", "--batch", "8", "--channel-base", "2048", "--channel-max", "16",
        "--kimg", "0.016", "--snapshot-kimg", "1", "--device", "cpu", "--quiet"]


def _steps(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"loss_g"' in line]


def test_two_process_gloo_matches_one_process(tmp_path):
    from retina.phantom.dataset import write_phantom

    data = write_phantom(tmp_path / "ph", n=10, size=16, grades=[0, 1, 2, 3, 4], seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one", tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                "-m", "retina.cli"]
    result = subprocess.run([*torchrun, *ARGS, "--data", str(data), "--out", str(double)], env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("trained layout") == 1  # the summary line comes from rank 0 only
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main([*ARGS, "--data", str(data), "--out", str(single)])
    finally:
        torch.set_num_threads(threads)
    one, two = _steps(single), _steps(double)
    assert [r["nimg"] for r in two] == [8, 16]  # one record per step: a second writer would duplicate them
    for a, b in zip(one, two, strict=True):
        assert a["loss_g"] == pytest.approx(b["loss_g"], rel=2e-3, abs=2e-3)
        assert a["loss_d"] == pytest.approx(b["loss_d"], rel=2e-3, abs=2e-3)
    g_one, g_two = Checkpoint(single).submodule("g_ema"), Checkpoint(double).submodule("g_ema")
    for key in g_one:
        torch.testing.assert_close(g_one[key], g_two[key], rtol=1e-2, atol=1e-3)
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir())
