"""`retina data export`: nnU-Net v2, MONAI and label-map layouts that those tools read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from retina.cli import main
from retina.common.canonical import CanonicalWriter
from retina.data.export import LABELMAP_ORDER, bit_field, nnunet_labels

SIZE = 32


@pytest.fixture
def lesion_set(tmp_path):
    """Three photographs (train, val, test) whose haemorrhage and hard exudate overlap at one known pixel."""
    out = tmp_path / "set"
    rng = np.random.default_rng(0)
    with CanonicalWriter(out, resolution=SIZE) as writer:
        for i, split in enumerate(("train", "val", "test")):
            he, ex, fov = (np.zeros((SIZE, SIZE), bool) for _ in range(3))
            fov[2:-2, 2:-2] = True
            he[10:14, 10:14] = True
            ex[12:16, 12:16] = True  # overlaps he at [12:14, 12:14]
            writer.add(f"img{i}", image=rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8),
                       masks={"he": he, "ex": ex, "fov": fov}, grade=2, split=split)
    return out


def test_bit_field_and_regions_keep_overlaps():
    masks = np.zeros((3, 2, 2), bool)
    masks[0, 0, 0] = masks[2, 0, 0] = True
    masks[1, 1, 1] = True
    label = bit_field(masks)
    assert label.tolist() == [[5, 0], [0, 2]]
    labels, order = nnunet_labels(["he", "ex", "ma"])
    assert labels["background"] == 0 and 5 in labels["he"] and 5 in labels["ma"] and 5 not in labels["ex"]
    assert sorted(set().union(*(labels[c] for c in ("he", "ex", "ma")))) == list(range(1, 8)) and order == [1, 2, 4]
    assert bit_field(np.ones((9, 1, 1), bool)).dtype == np.uint16


def test_nnunet_export(lesion_set, tmp_path):
    main(["data", "export", str(lesion_set), "--format", "nnunet", "--out", str(tmp_path / "raw"),
          "--channels", "he,ex", "--dataset-id", "7", "--name", "Lesions"])
    root = tmp_path / "raw" / "Dataset007_Lesions"
    info = json.loads((root / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "R", "1": "G", "2": "B"} and info["file_ending"] == ".png"
    assert info["numTraining"] == 2 and info["regions_class_order"] == [1, 2]
    assert info["labels"] == {"background": 0, "he": [1, 3], "ex": [2, 3]}
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == ["img0_0000.png", "img1_0000.png"]
    assert [p.name for p in (root / "imagesTs").iterdir()] == ["img2_0000.png"]
    label = np.array(Image.open(root / "labelsTr" / "img0.png"))
    assert label[11, 11] == 1 and label[13, 13] == 3 and label[15, 15] == 2 and label[0, 0] == 0
    assert np.array_equal(np.array(Image.open(root / "imagesTr" / "img0_0000.png")),
                          np.array(Image.open(lesion_set / "images" / "img0.png")))


def test_nnunet_export_passes_nnunets_own_check(lesion_set, tmp_path):
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    main(["data", "export", str(lesion_set), "--format", "nnunet", "--out", str(tmp_path / "Dataset008_X"),
          "--channels", "he,ex"])
    verify.verify_dataset_integrity(str(tmp_path / "Dataset008_X"), num_processes=1)


def test_monai_datalist(lesion_set, tmp_path):
    from monai.data import load_decathlon_datalist
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    main(["data", "export", str(lesion_set), "--format", "monai", "--out", str(tmp_path / "m")])
    datalist = tmp_path / "m" / "datalist.json"
    training = load_decathlon_datalist(datalist, is_segmentation=True, data_list_key="training")
    assert len(training) == 1 and len(load_decathlon_datalist(datalist, True, "validation")) == 1
    assert len(load_decathlon_datalist(datalist, True, "test")) == 1
    item = Compose([LoadImaged(["image", "label"], image_only=True),
                    EnsureChannelFirstd(["image", "label"])])(training[0])
    assert tuple(item["label"].shape) == (2, SIZE, SIZE)  # he, ex stacked as channels
    assert json.loads(datalist.read_text())["channels"] == ["he", "ex"]


def test_labelmap_priority(lesion_set, tmp_path):
    main(["data", "export", str(lesion_set), "--format", "labelmap", "--out", str(tmp_path / "lm")])
    label = np.array(Image.open(tmp_path / "lm" / "labelmaps" / "img1.png"))
    table = json.loads((tmp_path / "lm" / "labelmap.json").read_text())
    he, ex, fov = (LABELMAP_ORDER.index(c) + 1 for c in ("he", "ex", "fov"))
    assert label[0, 0] == 0 and label[5, 5] == fov and label[11, 11] == he and label[15, 15] == ex
    assert label[13, 13] == he  # overlap: the later class in the order (he after ex) wins
    assert table["names"][str(he)] == "he" and table["classes"]["0"] == "outside the field of view"


@pytest.mark.parametrize("args, message", [
    (["--format", "coco"], "choose one of nnunet"),
    (["--format", "nnunet", "--channels", "he,xx"], "--channels xx"),
    (["--format", "nnunet", "--channels", "vessels"], "masks/vessels missing"),
    (["--format", "nnunet", "--dataset-id", "0"], "1-999"),
    (["--format", "nnunet", "--name", "a/b"], "--name"),
])
def test_export_refuses(lesion_set, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as done:
        main(["data", "export", str(lesion_set), "--out", str(tmp_path / "o"), *args])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir())
