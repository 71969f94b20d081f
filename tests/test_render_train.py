"""`retina render train` end to end at 32 px: DR-GAN coarse -> fine, SPADE, resume, checkpoints, load_renderer."""

from __future__ import annotations

import json

import pytest
import torch

from retina.cli import main
from retina.common.checkpoint import Checkpoint, save_checkpoint
from retina.common.errors import RetinaError
from retina.render.model import Renderer, load_renderer

TINY = ["--res", "32", "--width", "8", "--batch", "4", "--device", "cpu", "--grader", "tiny",
        "--grader-steps", "2", "--no-perceptual"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def coarse_run(phantom, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "coarse"
    main(["render", "train", "--data", str(phantom), "--out", str(run), "--stage", "coarse",
          "--steps", "3", "--every", "3", *TINY])
    return run


def _steps(run) -> list[int]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["step"] for r in lines if "loss_g" in r]


def test_drgan_coarse_then_fine_and_render(coarse_run, phantom, tmp_path):
    assert (coarse_run / "last.safetensors").is_file() and (coarse_run / "best.safetensors").is_file()
    assert list((coarse_run / "samples").glob("coarse_*.png"))
    assert _steps(coarse_run) == [1, 2, 3]
    coarse = load_renderer(coarse_run)
    assert coarse.res == 16 and coarse.name == "drgan"  # G_m alone renders res/2

    fine_run = tmp_path / "fine"
    main(["render", "train", "--data", str(phantom), "--out", str(fine_run), "--stage", "fine",
          "--init", str(coarse_run), "--steps", "2", "--every", "2", *TINY])
    renderer = load_renderer(fine_run / "last.safetensors")
    assert isinstance(renderer, Renderer) and renderer.res == 32 and len(renderer.checkpoint_hash) == 12
    # G_m's weights came from the coarse run
    fine_ckpt, coarse_ckpt = Checkpoint(fine_run), Checkpoint(coarse_run)
    assert fine_ckpt.config["init"] == str(coarse_run)
    assert any(k.startswith("g.local_") for k in fine_ckpt.tensors)
    assert not any(k.startswith("g.local_") for k in coarse_ckpt.tensors)

    masks = (torch.rand(3, len(renderer.channels), 32, 32) > 0.85).float()
    images = renderer.render(masks, torch.tensor([0, 2, 4]), [5, 6, 7])
    assert images.shape == (3, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    # deterministic per sample seed, independent of the batch it is rendered in
    alone = renderer.render(masks[1:2], torch.tensor([2]), [6])
    assert torch.allclose(images[1:2], alone, atol=1e-5)
    other_seed = renderer.render(masks[1:2], torch.tensor([2]), [99])
    assert not torch.allclose(alone, other_seed)
    predicted = renderer.render(masks, None, [5, 6, 7])  # grade from the encoder's grade head
    assert predicted.shape == images.shape
    with pytest.raises(RetinaError, match="needs masks"):
        renderer.render(masks[:, :3], None, [1, 2, 3])


def _resume_error(argv, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_resume_continues_step_count(coarse_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(coarse_run, run)
    before = Checkpoint(run)
    resume = ["render", "train", "--resume", str(run), "--device", "cpu"]
    # a total at or below the steps done is refused in one line, not silently ignored
    assert f"{run} has already trained 3 steps; pass --steps larger than 3" in _resume_error([*resume, "--steps", "3"],
                                                                                            capsys)
    main([*resume, "--steps", "5"])
    assert _steps(run) == [1, 2, 3, 4, 5]
    # no --steps: on to the saved total, here reached already
    assert "has already trained 5 steps" in _resume_error(resume, capsys)
    assert Checkpoint(run).state["step"] == 5
    # --kimg counts the run's own batch (4), not the --batch default: 24 images = 6 steps
    main([*resume, "--kimg", "0.024"])
    assert _steps(run) == [1, 2, 3, 4, 5, 6]
    after = Checkpoint(run)
    assert after.state["step"] == 6 and before.state["step"] == 3
    assert "opt_g" in after.state and "rng" in after.state
    # the grading space carried over unchanged
    assert torch.equal(after.tensors["space.mean"], before.tensors["space.mean"])


def test_spade_trains_and_checkpoint_round_trips(phantom, tmp_path):
    run = tmp_path / "spade"
    main(["render", "train", "--data", str(phantom), "--out", str(run), "--arch", "spade", "--steps", "2",
          "--every", "2", *TINY])
    ckpt = Checkpoint(run).expect("render", "spade")
    renderer = load_renderer(run)
    # the renderer bakes spectral norm into plain weights: it renders what the checkpoint's generator renders
    from retina.common.checkpoint import load_module
    from retina.render.config import RenderConfig
    from retina.render.model import build_generator

    generator = build_generator(RenderConfig.from_dict(ckpt.config), 0)
    load_module(generator, ckpt.submodule("g_ema"), ckpt.path)
    masks = (torch.rand(2, len(renderer.channels), 32, 32) > 0.8).float()
    with torch.no_grad():
        expected = generator.eval()(masks)[0]
    images = renderer.render(masks, None, [0, 1])
    assert images.shape == (2, 3, 32, 32) and torch.allclose(images, expected.clamp(-1, 1), atol=1e-5)


def test_layout_and_corrupt_checkpoints_refused(tmp_path, capsys, phantom):
    layout = save_checkpoint(tmp_path / "layout", {"w": torch.zeros(1)}, {"kind": "layout", "arch": "dcgan"})
    with pytest.raises(RetinaError, match="render"):
        load_renderer(layout)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(layout.read_bytes()[:40])
    with pytest.raises(RetinaError, match="truncated"):
        load_renderer(broken)
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "train", "--data", str(phantom), "--out", str(tmp_path / "x"), "--stage", "fine",
              "--init", str(layout), *TINY])
    assert exit_info.value.code == 2
    assert "layout/dcgan checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_options_exit_2(phantom, tmp_path, capsys):
    for args, message in ((["--arch", "vqgan"], "unknown renderer"), (["--res", "48"], "power of two")):
        with pytest.raises(SystemExit) as exit_info:
            main(["render", "train", "--data", str(phantom), "--out", str(tmp_path / "y"), *TINY, *args])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_ablation_flags(phantom, tmp_path):
    run = tmp_path / "ablation"
    main(["render", "train", "--data", str(phantom), "--out", str(run), "--steps", "1", "--every", "1",
          "--no-sca", "--no-agm", "--no-lesion-masks", "--no-cls", "--from-scratch", *TINY])
    ckpt = Checkpoint(run)
    assert not any(".attention." in k for k in ckpt.tensors)  # no SCA
    assert not any(k.startswith("space.") for k in ckpt.tensors)  # no grading space
    renderer = load_renderer(run)
    assert renderer.channels == ("vessels", "od", "fov")
    assert renderer.render(torch.zeros(1, 3, 32, 32), None, [0]).shape == (1, 3, 32, 32)
