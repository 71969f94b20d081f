"""`retina render train` under torchrun with 2 CPU processes (gloo), and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from retina.common.checkpoint import Checkpoint

ARGS = ["render", "train", "--arch", "spade", "--res", "32", "--width", "8", "--grader", "tiny", "--grader-steps", "2",
        "--no-perceptual", "--device", "cpu", "--seed", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _steps(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"step"' in line
            and "val_l1" not in line]


def test_two_process_gloo_run_writes_once(tmp_path):
    from retina.phantom.dataset import write_phantom

    data = write_phantom(tmp_path / "ph", n=8, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    out = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29527",
                "-m", "retina.cli"]
    result = subprocess.run([*torchrun, *ARGS, "--batch", "2", "--steps", "2", "--every", "2", "--data", str(data),
                             "--out", str(out)], env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [r["step"] for r in _steps(out)] == [1, 2]  # one record per step: a second writer would duplicate them
    assert Checkpoint(out / "last.safetensors").state["step"] == 2


# Enough steps that the kill, sent as soon as the first checkpoint exists, lands mid-run even on a fast machine.
TOTAL = 60


def test_sigkill_then_resume_continues(tmp_path):
    from retina.phantom.dataset import write_phantom

    data = write_phantom(tmp_path / "ph", n=8, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "retina.cli", *ARGS, "--batch", "2", "--steps", str(TOTAL),
                                "--every", "1", "--data", str(data), "--out", str(out)], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (out / "last.safetensors").is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = Checkpoint(out / "last.safetensors").state["step"]  # loads: never half-written
    assert saved >= 1
    result = subprocess.run([sys.executable, "-m", "retina.cli", "render", "train", "--resume", str(out), "--device",
                             "cpu"], env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [r["step"] for r in _steps(out)]
    assert saved < TOTAL and steps == list(range(1, TOTAL + 1))  # continues to the saved total: no gap, no duplicate
    assert Checkpoint(out / "last.safetensors").state["step"] == TOTAL
