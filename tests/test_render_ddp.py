"""`retina render train` under torchrun with 2 CPU processes (gloo): same result as one process with the same
global batch, only rank 0 writes; and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from retina.cli import main
from retina.common.checkpoint import Checkpoint

# DR-GAN's discriminator and LSGAN: the PatchGAN's spectral-norm convs feed instance norms, so their weights have
# directions of exactly zero gradient where Adam's first step (betas 0, 0.9) turns summation-order rounding into
# lr-sized moves; the equivalence of the distributed run is what is tested here, not that noise
ARGS = ["render", "train", "--arch", "spade", "--res", "32", "--width", "8", "--grader", "tiny", "--grader-steps", "2",
        "--no-perceptual", "--device", "cpu", "--seed", "0", "--discriminator", "drgan", "--gan-loss", "lsgan"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _steps(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"step"' in line
            and "val_l1" not in line]


def test_two_process_gloo_matches_one_process(tmp_path, one_thread):
    """Global batch 4 as 2 ranks x 2 (torchrun, gloo) and as 1 process x 4: same losses, same D, same renders."""
    from retina.phantom.dataset import write_phantom
    from retina.render.model import load_renderer

    data = write_phantom(tmp_path / "ph", n=8, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*ARGS, "--batch", "4", "--steps", "3", "--every", "3", "--data", str(data)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29527",
                "-m", "retina.cli"]
    result = subprocess.run([*torchrun, *args, "--out", str(two)], env=ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    main([*args, "--out", str(one)])
    assert [r["step"] for r in _steps(two)] == [1, 2, 3]  # one record per step: a second writer would duplicate them
    assert Checkpoint(two / "last.safetensors").state["step"] == 3
    # Only float summation order differs (per-rank partial sums, then the all-reduce): ~1e-6 relative. Without
    # the shared sampler and per-sample seeds the losses differ by ~1e-2 from the first step.
    for a, b in zip(_steps(one), _steps(two), strict=True):
        for key in ("loss_d", "loss_adv", "loss_fm", "loss_cls", "loss_g", "l1"):
            assert a[key] == pytest.approx(b[key], rel=2e-5, abs=2e-5), (a["step"], key)
    d_one, d_two = Checkpoint(one).submodule("d"), Checkpoint(two).submodule("d")
    for key in d_one:
        torch.testing.assert_close(d_one[key], d_two[key], rtol=1e-4, atol=1e-6)
    # G is compared by what it renders: conv biases in front of an instance norm have a zero true gradient, so
    # Adam moves them by up to lr per step on rounding noise alone, which no output can see.
    masks = (torch.rand(2, 10, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.8).float()
    renders = [load_renderer(run).render(masks, None, [3, 4]) for run in (one, two)]
    torch.testing.assert_close(renders[0], renders[1], rtol=0, atol=1e-4)


def test_drgan_two_process_gloo_matches_one_process_and_resumes_bit_exactly(tmp_path, one_thread):
    """DR-GAN (coarse, SCA, adaptive grading manipulation, grade losses) as 2 ranks x 2 and as 1 process x 4; and
    under torchrun 3 steps straight vs 2 + resume to 3 give the same last.safetensors and losses.

    On CPU its BatchNorm normalises with per-rank statistics (torch's SyncBatchNorm runs on GPUs only; see
    retina/render/train.py). Every BatchNorm of the coarse generator sits in the mask encoder and the residual
    trunk, before any noise or grading vector enters, so the set here gives every image the same masks: then per-rank
    and global batch statistics are equal and the two runs are the same computation up to float summation order,
    while photographs, grades, grading vectors and noise still differ per sample."""
    import shutil

    from retina.phantom.dataset import write_phantom
    from retina.render.model import load_renderer

    data = write_phantom(tmp_path / "ph", n=8, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    for channel in (data / "masks").iterdir():
        first, *others = sorted(channel.iterdir())
        for other in others:
            shutil.copyfile(first, other)
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*ARGS[:2], "--arch", "drgan", "--stage", "coarse", *ARGS[4:], "--batch", "4", "--every", "1", "--data",
            str(data)]

    def torchrun(argv: list[str], port: int) -> None:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                   "-m", "retina.cli", *argv]
        result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]

    torchrun([*args, "--steps", "3", "--out", str(two)], 29528)
    main([*args, "--steps", "3", "--out", str(one)])
    assert [r["step"] for r in _steps(two)] == [1, 2, 3]
    # Measured: logged losses (6 decimals) identical; D's parameters differ by <= 2e-8, G's weights by <= 6e-6.
    for a, b in zip(_steps(one), _steps(two), strict=True):
        for key in ("loss_d", "loss_adv", "loss_fm", "loss_cls", "loss_grade_head", "loss_g", "l1"):
            assert a[key] == pytest.approx(b[key], rel=2e-5, abs=2e-5), (a["step"], key)
    c_one, c_two = Checkpoint(one).tensors, Checkpoint(two).tensors
    lr, steps = 1e-4, 3
    for key, x in c_one.items():
        y = c_two[key]
        if key.startswith(("d.", "space.")):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6, msg=key)
        elif key.endswith("running_var"):
            # each rank's running variance uses its own count n in the unbiased n / (n - 1): 2-4x fewer values
            # per rank at the 2x2 trunk, a few per cent apart after 3 momentum-0.1 updates (measured <= 4 %)
            torch.testing.assert_close(x, y, rtol=0.1, atol=1e-6, msg=key)
        elif key.endswith(".0.bias") and key.replace(".0.bias", ".1.running_mean") in c_one or key.endswith(
                "running_mean"):
            # a conv bias in front of a BatchNorm has a zero true gradient: Adam moves it by about lr per step on
            # rounding noise alone (measured 3.4e-4 after 3 steps), and the running mean follows; no output sees it
            torch.testing.assert_close(x, y, rtol=0, atol=2 * lr * steps, msg=key)
        elif x.is_floating_point():
            # within one Adam step (about lr) of each other: the same steps were taken, up to float summation order
            # (measured 6.2e-5 on a trunk conv feeding a BatchNorm, whose scale-free gradient Adam normalises)
            torch.testing.assert_close(x, y, rtol=0, atol=lr, msg=key)
    masks = (torch.rand(2, 10, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.8).float()
    renders = [load_renderer(run).render(masks, torch.tensor([1, 3]), [3, 4]) for run in (one, two)]
    # eval mode normalises with those running statistics: renders measured 5e-5 apart (of 1), so 1e-3
    torch.testing.assert_close(renders[0], renders[1], rtol=0, atol=1e-3)

    from test_resume_exact import assert_same_run

    resumed = tmp_path / "resumed"
    torchrun([*args, "--steps", "2", "--out", str(resumed)], 29529)
    torchrun(["render", "train", "--resume", str(resumed), "--device", "cpu", "--steps", "3"], 29530)
    assert_same_run(two, resumed)


# Enough steps that the kill, sent as soon as the first checkpoint exists, lands mid-run even on a fast machine.
TOTAL = 30


def test_sigkill_then_resume_is_the_uninterrupted_run(tmp_path, one_thread):
    """`--resume` after SIGKILL continues the step count without gap or duplicate and ends with the same
    last.safetensors (every tensor, optimiser and RNG state included) and the same logged losses as an
    uninterrupted run of the same length."""
    from test_resume_exact import assert_same_run

    from retina.phantom.dataset import write_phantom

    data = write_phantom(tmp_path / "ph", n=8, size=32, grades=[0, 1, 2, 3, 4], seed=0)
    out = tmp_path / "killed"
    args = [*ARGS, "--batch", "2", "--steps", str(TOTAL), "--every", "1", "--data", str(data)]
    process = subprocess.Popen([sys.executable, "-m", "retina.cli", *args, "--out", str(out)], env=ENV,
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
                             "cpu"], env=ENV, capture_output=True, text=True, timeout=600)  # SPADE's 128-wide MLPs
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [r["step"] for r in _steps(out)]
    assert saved < TOTAL and steps == list(range(1, TOTAL + 1))  # continues to the saved total: no gap, no duplicate
    assert Checkpoint(out / "last.safetensors").state["step"] == TOTAL
    main([*args, "--out", str(tmp_path / "straight")])  # one torch thread, as the subprocesses
    assert_same_run(tmp_path / "straight", out)
