"""Resume is the same run: N steps straight vs k steps, stop, resume to N give identical tensors in last.safetensors
(weights, EMA, optimiser moments, RNG states) and identical logged losses, for both trainers. SIGKILL from the CLI
and 2-process gloo: tests/test_render_ddp.py and tests/test_layout_ddp.py."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from retina.cli import main

RENDER = ["render", "train", "--res", "32", "--width", "8", "--batch", "4", "--device", "cpu", "--grader", "tiny",
          "--grader-steps", "2", "--no-perceptual", "--seed", "0"]
LAYOUT = ["layout", "train", "--res", "8", "--batch", "8", "--channel-base", "2048", "--channel-max", "16", "--device",
          "cpu",
          "--quiet", "--seed", "0", "--ada-target", "-1", "--ada-kimg", "0.2"]
LOSS_KEYS = ("loss_g", "loss_d", "loss_adv", "loss_fm", "loss_cls", "l1", "r1", "ada_p", "ada_rt", "val_l1")


pytestmark = pytest.mark.usefixtures("one_thread")


def _records(run) -> list[dict]:
    """Log records without their wall-clock time."""
    out = []
    for line in (run / "log.jsonl").read_text().splitlines():
        record = {k: v for k, v in json.loads(line).items() if k != "time"}
        if any(k in record for k in LOSS_KEYS):
            out.append(record)
    return out


def assert_same_run(straight, resumed) -> None:
    a, b = load_file(straight / "last.safetensors"), load_file(resumed / "last.safetensors")
    assert sorted(a) == sorted(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:10]
    assert _records(straight) == _records(resumed)


@pytest.fixture(scope="module")
def phantom12(tmp_path_factory):
    from retina.phantom.dataset import write_phantom

    # 10 images at batch 4: 2 batches per epoch, so a resume at step 3 lands mid-epoch
    return write_phantom(tmp_path_factory.mktemp("ph") / "ph", n=10, size=32, grades=[0, 1, 2, 3, 4], seed=0)


@pytest.mark.parametrize("arch", ["spade", "drgan"])
def test_render_resume_mid_epoch_is_bit_exact(arch, phantom12, tmp_path):
    """5 steps straight vs 3 + resume to 5; the resume enters epoch 1 after its first batch. Before the fix the
    resumed run replayed that batch and its losses differed from step 4."""
    args = [*RENDER, "--arch", arch, "--data", str(phantom12)]
    if arch == "drgan":
        args += ["--stage", "coarse"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    main([*args, "--out", str(straight), "--steps", "5", "--every", "3"])
    main([*args, "--out", str(resumed), "--steps", "3", "--every", "3"])
    main(["render", "train", "--resume", str(resumed), "--device", "cpu", "--steps", "5"])
    assert [r["step"] for r in _records(resumed) if "loss_g" in r] == [1, 2, 3, 4, 5]
    assert_same_run(straight, resumed)


def test_layout_resume_across_ada_update_is_bit_exact(phantom12, tmp_path):
    """6 steps straight vs 2 + resume to 6: the ADA update at step 4 moves p (target -1: up by 32/200 per update)
    so the augmentations after it draw from the restored RNG."""
    args = [*LAYOUT, "--data", str(phantom12), "--snapshot-kimg", "0.016"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    main([*args, "--out", str(straight), "--kimg", "0.048"])
    main([*args, "--out", str(resumed), "--kimg", "0.016"])
    main(["layout", "train", "--resume", str(resumed), "--kimg", "0.048", "--device", "cpu", "--quiet"])
    p = [r["ada_p"] for r in _records(straight) if "loss_g" in r]
    assert p[:3] == [0.0] * 3 and p[3] == pytest.approx(0.16) and p[3:] == [p[3]] * 3  # ADA ran and moved p
    assert_same_run(straight, resumed)
