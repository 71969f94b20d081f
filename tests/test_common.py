"""retina.common: canonical format, checkpoints, image IO and the torch data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.checkpoint import Checkpoint, save_checkpoint
from retina.common.dataset import AugmentConfig, FundusDataset, resize_masks
from retina.common.errors import RetinaError
from retina.common.imageio import read_image, read_mask, write_png


def _square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def _write_set(out, n: int = 3, size: int = 16, channels=("ma", "od")):
    rng = np.random.default_rng(0)
    with CanonicalWriter(out, resolution=size, provenance={"description": "unit test"}) as writer:
        for i in range(n):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            masks = {c: _square(size, i, j, 3) for j, c in enumerate(channels)}
            writer.add(f"s{i}", image=image, masks=masks, grade=i % 5, split="train" if i else "val", source="t")
    return out


# -- canonical format ------------------------------------------------------------------------------
def test_canonical_round_trip(tmp_path):
    root = _write_set(tmp_path / "set")
    data = CanonicalDataset(root)
    assert data.names == ["s0", "s1", "s2"]
    assert [s.grade for s in data.samples] == [0, 1, 2]
    assert data.sample("s0").split == "val"
    assert data.channels == ("od", "ma")  # schema order, not insertion order
    assert "vessels" in data.missing_channels
    assert data.resolution == 16 and data.info["provenance"] == {"description": "unit test"}
    masks = data.load_masks("s2", ["ma", "od"])
    assert masks.dtype == bool and masks.shape == (2, 16, 16)
    assert np.array_equal(masks[0], _square(16, 2, 0, 3)) and np.array_equal(masks[1], _square(16, 2, 1, 3))
    assert data.load_image("s1").shape == (16, 16, 3)
    assert not (tmp_path / "set.partial").exists()


def test_writer_removes_partial_folder_on_exception(tmp_path):
    out = tmp_path / "set"
    with pytest.raises(ValueError), CanonicalWriter(out) as writer:
        writer.add("a", image=np.zeros((8, 8, 3), np.uint8), grade=0)
        raise ValueError("interrupted")
    assert not out.exists() and not (tmp_path / "set.partial").exists()


def test_missing_channel_is_an_error_not_zeros(tmp_path):
    data = CanonicalDataset(_write_set(tmp_path / "set"))
    with pytest.raises(RetinaError, match="vessels"):
        data.load_masks("s0", ["vessels"])
    with pytest.raises(RetinaError, match="masks/he"):
        FundusDataset(data.root, size=16, channels=["he"])


@pytest.mark.parametrize("grade", ["5", "two", "-1", "1.5"])
def test_bad_grade_in_labels_is_one_line_error(tmp_path, grade):
    root = _write_set(tmp_path / "set")
    (root / "labels.csv").write_text(f"name,grade,split,source\ns0,{grade},train,t\n")
    with pytest.raises(RetinaError, match=r"labels\.csv:2: grade") as error:
        CanonicalDataset(root)
    assert "\n" not in str(error.value)


# -- checkpoints -----------------------------------------------------------------------------------
def test_checkpoint_round_trip_with_optimiser_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    model(torch.randn(4, 3)).sum().backward()
    optimiser.step()
    tensors = {f"g.{k}": v for k, v in model.state_dict().items()}
    state = {"optimiser": optimiser.state_dict(), "step": 7, "history": [1.5, 2.5]}
    save_checkpoint(tmp_path / "ck", tensors, {"kind": "layout", "arch": "tiny"}, state)
    loaded = Checkpoint(tmp_path / "ck.safetensors").expect("layout", "tiny")
    assert loaded.config == {"kind": "layout", "arch": "tiny"} and loaded.state["step"] == 7
    assert set(loaded.tensors) == set(tensors)
    assert all(torch.equal(loaded.tensors[k], v) for k, v in tensors.items())
    restored = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    restored.load_state_dict(loaded.state["optimiser"])
    original = optimiser.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], original)
    assert len(loaded.short_hash) == 12
    with pytest.raises(RetinaError, match="render"):
        loaded.expect("render")


def test_checkpoint_refuses_pickle_and_truncated_files(tmp_path):
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, pickled)
    with pytest.raises(RetinaError, match="pickle"):
        Checkpoint(pickled)
    path = save_checkpoint(tmp_path / "ck", {"w": torch.randn(64, 64)}, {"kind": "render", "arch": "x"})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RetinaError, match="truncated") as error:
        Checkpoint(path)
    assert "\n" not in str(error.value)


# -- image IO --------------------------------------------------------------------------------------
def test_imageio_rejects_empty_and_truncated_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(RetinaError, match="empty"):
        read_image(empty)
    good = tmp_path / "good.png"
    write_png(good, np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(RetinaError, match="truncated"):
        read_image(truncated)
    with pytest.raises(RetinaError, match="not found"):
        read_mask(tmp_path / "absent.png")


def test_imageio_reads_16_bit_and_palette_files(tmp_path):
    deep = np.zeros((8, 8), np.uint16)
    deep[2:4, 2:4] = 65535
    Image.fromarray(deep).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image.shape == (8, 8, 3) and image[2, 2, 0] == 255 and image[0, 0, 0] == 0
    assert np.array_equal(read_mask(tmp_path / "deep.png"), deep > 0)
    palette = Image.fromarray(_square(8, 1, 1, 3).astype(np.uint8), mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 1 = red, as some annotation tools save
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(read_mask(tmp_path / "palette.png"), _square(8, 1, 1, 3))
    assert read_image(tmp_path / "palette.png")[2, 2].tolist() == [255, 0, 0]


# -- torch data set --------------------------------------------------------------------------------
def test_resize_masks_keeps_a_three_pixel_lesion_at_quarter_scale():
    mask = torch.zeros(1, 64, 64)
    mask[0, 30, 30:33] = 1  # a 3-pixel microaneurysm
    small = resize_masks(mask, 16)
    assert small.shape == (1, 16, 16) and small.sum() >= 1
    nearest = torch.nn.functional.interpolate(mask[None], size=(16, 16), mode="nearest")
    assert nearest.sum() == 0  # what the max pooling is there for


def test_resize_masks_batched_and_channels_last_equal_per_plane_pooling():
    """The 4-D fast path (an exact factor, pooled without flattening) gives what pooling each plane gives, for a
    channels_last stack too, and keeps a lesion in the cell of a 4 x 4 grid where it lies."""
    torch.manual_seed(0)
    masks = (torch.rand(2, 3, 64, 64) > 0.995).float()
    masks[1, 2] = 0
    masks[1, 2, 40, 9] = 1  # one pixel: row cell 40 // 16 = 2, column cell 9 // 16 = 0
    for size in (4, 16, 32):
        expected = torch.stack([torch.stack([
            masks[b, c].reshape(size, 64 // size, size, 64 // size).amax(dim=(1, 3)) for c in range(3)])
            for b in range(2)])
        assert torch.equal(resize_masks(masks, size), expected)
        assert torch.equal(resize_masks(masks.contiguous(memory_format=torch.channels_last), size), expected)
    grid = resize_masks(masks, 4)[1, 2]
    assert grid.sum() == 1 and grid[2, 0] == 1
    assert resize_masks(masks[0], 16).shape == (3, 16, 16)  # 3-D stacks take the general path


def test_fundus_dataset_item_ranges(tmp_path):
    root = _write_set(tmp_path / "set", size=24)
    dataset = FundusDataset(root, size=16, channels=["ma", "od"], augment=None)
    item = dataset[1]
    assert item["image"].shape == (3, 16, 16) and item["masks"].shape == (2, 16, 16)
    assert -1 <= item["image"].min() and item["image"].max() <= 1 and item["image"].min() < 0 < item["image"].max()
    assert set(item["masks"].unique().tolist()) == {0.0, 1.0}
    assert item["grade"] == 1 and item["name"] == "s1"
    assert len(FundusDataset(root, size=16, split="val", augment=None)) == 1


def test_paired_augmentation_keeps_image_and_masks_aligned(tmp_path):
    size = 32
    block = _square(size, 4, 4, 10)
    with CanonicalWriter(tmp_path / "set", resolution=size) as writer:
        image = np.where(block[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
        writer.add("a", image=image, masks={"ex": block}, grade=2)
    config = AugmentConfig(flip=1.0, rotation=30.0, brightness=0, contrast=0, saturation=0, hue=0)
    dataset = FundusDataset(tmp_path / "set", size=size, channels=["ex"], augment=config)
    item = dataset[0]
    bright = item["image"].mean(0) > 0
    mask = item["masks"][0] > 0.5
    assert mask[:, size // 2:].sum() > mask[:, : size // 2].sum()  # the flip moved the block to the right
    iou = (bright & mask).sum() / (bright | mask).sum()
    assert iou > 0.7
