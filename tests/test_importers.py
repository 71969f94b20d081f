"""Importers: tiny fixtures written in each data set's exact published layout, imported at 32 px."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.imageio import read_mask
from retina.data.fov import fov_from_image, square_crop
from retina.data.importers import IMPORTERS, get_importer
from retina.data.importers.pipeline import import_dataset
from retina.data.mask_resize import measure_loss, resize_mask_stack

SIZE = 64


def fundus(seed: int, width: int = SIZE, height: int = SIZE) -> np.ndarray:
    """A black frame with an orange disc, like a fundus photograph."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 2 - 2) ** 2
    image = np.zeros((height, width, 3), np.uint8)
    image[disc] = (200, 90, 40) + rng.integers(0, 20, (int(disc.sum()), 3))
    return image


def ma_mask() -> np.ndarray:
    """A 3-pixel microaneurysm: it must survive 64 -> 32 px."""
    mask = np.zeros((SIZE, SIZE), bool)
    mask[30, 20:23] = True
    return mask


def blob(y: int, x: int, r: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - y) ** 2 + (xx - x) ** 2 <= r * r


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path)
    return path


def red_tif(path: Path, mask: np.ndarray) -> Path:
    """IDRiD ground truth: RGB TIFF with the lesion in the red channel only."""
    rgb = np.zeros((*mask.shape, 3), np.uint8)
    rgb[mask, 0] = 255
    return save(path, rgb)


def check(out: Path, count: int, channels: set[str], grades: bool | None) -> CanonicalDataset:
    data = CanonicalDataset(out)
    assert len(data) == count
    assert set(data.channels) == channels | {"fov"}
    assert data.load_image(data.names[0]).shape == (32, 32, 3)
    assert data.load_masks(data.names[0]).shape == (len(channels) + 1, 32, 32)
    if grades is not None:
        assert all((s.grade is not None) == grades for s in data.samples)
    assert not Path(str(out) + ".partial").exists()
    return data


# --- layouts -----------------------------------------------------------------------------------------


def write_idrid(root: Path) -> Path:
    seg = root / "IDRiD" / "A. Segmentation"  # SRC is one level above the part
    truths = seg / "2. All Segmentation Groundtruths"
    for folder, stems in (("a. Training Set", ["IDRiD_01", "IDRiD_02"]), ("b. Testing Set", ["IDRiD_55"])):
        for i, stem in enumerate(stems):
            save(seg / "1. Original Images" / folder / f"{stem}.jpg", fundus(i))
            red_tif(truths / folder / "1. Microaneurysms" / f"{stem}_MA.tif", ma_mask())
            red_tif(truths / folder / "2. Haemorrhages" / f"{stem}_HE.tif", blob(40, 40))
            red_tif(truths / folder / "3. Hard Exudates" / f"{stem}_EX.tif", blob(20, 40, 2))
            if i == 0:  # IDRiD ships soft-exudate files only for images that have them
                red_tif(truths / folder / "4. Soft Exudates" / f"{stem}_SE.tif", blob(45, 25))
            red_tif(truths / folder / "5. Optic Disc" / f"{stem}_OD.tif", blob(32, 50, 6))
    return root / "IDRiD"


def test_idrid_segmentation_keeps_a_3px_microaneurysm(tmp_path):
    src = write_idrid(tmp_path)
    report = import_dataset(get_importer("idrid"), tmp_path, tmp_path / "out", 32, show_progress=False)
    data = check(tmp_path / "out", 3, {"ma", "he", "ex", "se", "od"}, grades=False)
    assert {s.split for s in data.samples} == {"train", "test"}
    for name in data.names:
        assert data.load_masks(name, ["ma"]).sum() >= 1  # the 3-pixel MA survives 64 -> 32
    assert report.loss["ma"].instances_before == 3 and report.loss["ma"].lost_instances == 0
    assert data.load_masks("IDRiD_02", ["se"]).sum() == 0  # absent file = no lesion
    info = json.loads((tmp_path / "out" / "retina.json").read_text())
    assert info["provenance"]["format"] == "idrid"
    assert info["provenance"]["lost_by_resizing"]["ma"]["lost_instances"] == 0
    for root in (src, src / "A. Segmentation"):  # SRC may be the part itself or a folder above it
        assert IMPORTERS["idrid"].scan(root).root == src / "A. Segmentation"


def test_idrid_grading_csv(tmp_path):
    part = tmp_path / "B. Disease Grading"
    for i, stem in enumerate(["IDRiD_001", "IDRiD_002"]):
        save(part / "1. Original Images" / "a. Training Set" / f"{stem}.jpg", fundus(i))
    csv = part / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv"
    csv.parent.mkdir()
    csv.write_text("Image name,Retinopathy grade,Risk of macular edema ,,\nIDRiD_001,3,2,,\nIDRiD_002,0,0,,\n")
    import_dataset(get_importer("idrid-grading"), tmp_path, tmp_path / "out", 32, show_progress=False)
    data = check(tmp_path / "out", 2, set(), grades=True)
    assert data.sample("IDRiD_001").grade == 3 and data.sample("IDRiD_001").extra["macular_edema"] == "2"
    with pytest.raises(RetinaError, match="idrid-grading"):  # the wrong part gets pointed to the right format
        import_dataset(get_importer("idrid"), tmp_path, tmp_path / "out2", 32, show_progress=False)


def test_fgadr_with_irma_count(tmp_path):
    seg = tmp_path / "FGADR" / "Seg-set"
    for i, name in enumerate(["0001_1.png", "0002_3.png"]):
        save(seg / "Original_Images" / name, fundus(i))
        save(seg / "Microaneurysms_Masks" / name, ma_mask())
        save(seg / "Hemohedge_Masks" / name, blob(40, 40))
        save(seg / "HardExudate_Masks" / name, blob(20, 40))
        save(seg / "SoftExudate_Masks" / name, blob(45, 25))
        save(seg / "Neovascularization_Masks" / name, blob(25, 25) if i else np.zeros((SIZE, SIZE), bool))
    save(seg / "IRMA_Masks" / "0002_3.png", blob(10, 30, 2) | blob(50, 30, 2))
    (seg / "DR_Seg_Grading_Label.csv").write_text("0001_1.png,1\n0002_3.png,4\n")
    import_dataset(get_importer("fgadr"), tmp_path, tmp_path / "out", 32, show_progress=False)
    data = check(tmp_path / "out", 2, {"ma", "he", "ex", "se", "nv"}, grades=True)
    assert data.sample("0002_3").grade == 4
    assert data.sample("0002_3").extra["irma_instances"] == "2" and data.sample("0001_1").extra["irma_instances"] == "0"
    assert data.load_masks("0002_3", ["nv"]).any() and not data.load_masks("0001_1", ["nv"]).any()


def test_ddr_skips_ungradable(tmp_path):
    root = tmp_path / "DDR-dataset"
    for i, (folder, name) in enumerate([("train", "007-0001-000"), ("train", "007-0002-000"), ("valid", "007-0003-000"),
                                        ("test", "007-0004-000")]):
        save(root / "lesion_segmentation" / folder / "image" / f"{name}.jpg", fundus(i))
        save(root / "lesion_segmentation" / folder / "label" / "MA" / f"{name}.tif", ma_mask())
        save(root / "lesion_segmentation" / folder / "label" / "EX" / f"{name}.tif", blob(20, 40))
    (root / "DR_grading").mkdir()
    (root / "DR_grading" / "train.txt").write_text("007-0001-000.jpg 2\n007-0002-000.jpg 5\n")
    (root / "DR_grading" / "valid.txt").write_text("007-0003-000.jpg 3\n")
    report = import_dataset(get_importer("ddr"), tmp_path, tmp_path / "out", 32, show_progress=False)
    data = check(tmp_path / "out", 3, {"ex", "he", "ma", "se"}, grades=None)
    assert report.skipped["ungradable (grade 5)"] == 1 and "skipped: 1 ungradable" in report.summary_line()
    assert [(s.name, s.grade, s.split) for s in data.samples] == [
        ("007-0001-000", 2, "train"), ("007-0003-000", 3, "val"), ("007-0004-000", None, "test")]
    assert data.load_masks("007-0001-000", ["ma"]).any() and not data.load_masks("007-0001-000", ["he"]).any()


def write_drive(root: Path) -> Path:
    for folder, number in (("training", "21"), ("test", "01")):
        image = fundus(int(number), width=70, height=64)  # not square, like DRIVE's 565x584
        save(root / folder / "images" / f"{number}_{folder}.tif", image)
        vessels = np.zeros((64, 70), bool)
        vessels[32, 5:65] = True  # a 1-pixel vessel
        save(root / folder / "1st_manual" / f"{number}_manual1.gif", vessels, mode="P")
        save(root / folder / "mask" / f"{number}_{folder}_mask.gif", fov_from_image(image), mode="L")
    return root


def test_drive_gif_masks_and_fov(tmp_path):
    write_drive(tmp_path / "DRIVE")
    report = import_dataset(get_importer("drive"), tmp_path / "DRIVE", tmp_path / "out", 32, show_progress=False)
    data = check(tmp_path / "out", 2, {"vessels"}, grades=False)
    assert {s.split for s in data.samples} == {"train", "test"}
    assert report.loss["vessels"].lost_pixels == 0
    assert data.load_masks("21_training", ["fov"]).mean() > 0.6
    (tmp_path / "DRIVE" / "test" / "1st_manual" / "01_manual1.gif").unlink()
    with pytest.raises(RetinaError, match="01_manual1.gif"):  # vessels are never silently zero
        import_dataset(get_importer("drive"), tmp_path / "DRIVE", tmp_path / "out2", 32, show_progress=False)


def test_grades_only_sets(tmp_path):
    eyepacs = tmp_path / "eyepacs"
    save(eyepacs / "train" / "10_left.jpeg", fundus(0))
    save(eyepacs / "train" / "10_right.jpeg", fundus(1))
    (eyepacs / "trainLabels.csv").write_text("image,level\n10_left,0\n10_right,2\n13_left,1\n")
    report = import_dataset(get_importer("eyepacs"), eyepacs, tmp_path / "e", 32, show_progress=False)
    data = check(tmp_path / "e", 2, set(), grades=True)
    assert data.sample("10_right").grade == 2 and report.skipped["listed in the CSV but photograph missing"] == 1
    aptos = tmp_path / "aptos"
    save(aptos / "train_images" / "000c1434d8d7.png", fundus(2))
    (aptos / "train.csv").write_text("id_code,diagnosis\n000c1434d8d7,4\n")
    import_dataset(get_importer("aptos"), aptos, tmp_path / "a", 32, show_progress=False)
    assert check(tmp_path / "a", 1, set(), grades=True).samples[0].grade == 4
    assert data.samples[0].split in ("train", "test") and data.samples[0].source == "eyepacs"


def write_seg512(root: Path, n: int = 2) -> Path:
    for i in range(n):
        stem = f"IDRiD_{i + 1:02d}"
        save(root / "images" / f"{stem}.jpg", fundus(i))
        save(root / "masks_png" / f"{stem}_MA.png", ma_mask(), mode="1")
        save(root / "masks_png" / f"{stem}_EX.png", blob(20, 40) if i else np.zeros((SIZE, SIZE), bool), mode="1")
        save(root / "masks_png" / f"{stem}_OD.png", blob(32, 50, 6), mode="1")
    return root


def test_idrid_seg512_grade_empty_or_estimated(tmp_path):
    src = write_seg512(tmp_path / "seg512")
    import_dataset(get_importer("idrid-seg512"), src, tmp_path / "plain", 32, show_progress=False)
    check(tmp_path / "plain", 2, {"ma", "he", "ex", "se", "od"}, grades=False)
    import_dataset(get_importer("idrid-seg512"), src, tmp_path / "est", 32, estimate=True, show_progress=False)
    data = check(tmp_path / "est", 2, {"ma", "he", "ex", "se", "od"}, grades=True)
    assert [s.grade for s in data.samples] == [1, 2]  # MA only -> 1; MA and exudates -> 2
    assert data.info["provenance"]["grade_note"] == "grade estimated from lesion masks, not clinical"
    assert [s.split for s in data.samples] == [s.split for s in CanonicalDataset(tmp_path / "plain").samples]


# --- geometry and accounting ---------------------------------------------------------------------------


def test_fov_crop_pads_to_square_and_centres():
    image = np.zeros((40, 100, 3), np.uint8)
    image[5:35, 10:40] = 180  # a bright 30x30 region left of centre
    fov = fov_from_image(image)
    crop = square_crop(fov)
    out = crop.apply(image)
    assert out.shape == (30, 30, 3) and out.min() == 180
    wide = np.zeros((20, 50), bool)
    wide[:, 5:45] = True
    crop = square_crop(wide)
    assert crop.side == 40 and (crop.pad_top, crop.pad_bottom) == (10, 10)
    assert crop.apply_stack(wide[None]).shape == (1, 40, 40)
    assert fov_from_image(np.zeros((8, 8, 3), np.uint8)).all()  # no bright region: the whole frame


def test_loss_accounting_counts_what_nearest_would_drop():
    source = np.zeros((64, 64), bool)
    source[10, 10] = source[40, 41] = True  # two single-pixel lesions
    kept = resize_mask_stack(source[None], 16)[0]
    assert measure_loss(source, kept).lost_instances == 0
    nearest = source[::4, ::4]  # what nearest-neighbour would keep: (10,10) and (40,41) are off the grid
    loss = measure_loss(source, nearest)
    assert (loss.instances_before, loss.lost_instances, loss.lost_pixels) == (2, 2, 2)


# --- bad input -------------------------------------------------------------------------------------------


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(RetinaError, match="known formats: idrid"):
        get_importer("messidor")
    with pytest.raises(RetinaError, match="expected 'lesion_segmentation'"):
        import_dataset(IMPORTERS["ddr"], tmp_path, tmp_path / "o", 32, show_progress=False)
    with pytest.raises(RetinaError, match="source folder not found"):
        import_dataset(IMPORTERS["ddr"], tmp_path / "nope", tmp_path / "o", 32, show_progress=False)
    aptos = tmp_path / "aptos"
    save(aptos / "train_images" / "x.png", fundus(0))
    (aptos / "train.csv").write_text("id_code,grade\nx,1\n")
    with pytest.raises(RetinaError, match="missing column.*diagnosis"):
        import_dataset(IMPORTERS["aptos"], aptos, tmp_path / "o", 32, show_progress=False)
    (aptos / "train.csv").write_text("id_code,diagnosis\nx,7\n")
    with pytest.raises(RetinaError, match=r"train.csv:2: grade '7' is outside 0-4"):
        import_dataset(IMPORTERS["aptos"], aptos, tmp_path / "o", 32, show_progress=False)
    with pytest.raises(RetinaError, match="--estimate-grade needs lesion masks"):
        import_dataset(IMPORTERS["aptos"], aptos, tmp_path / "o", 32, estimate=True, show_progress=False)
    assert not (tmp_path / "o").exists()


def test_failure_half_way_leaves_no_output(tmp_path):
    src = write_seg512(tmp_path / "seg512", n=2)
    save(src / "masks_png" / "IDRiD_02_MA.png", np.zeros((48, 48), bool))  # wrong size, second image
    with pytest.raises(RetinaError, match="IDRiD_02_MA.png: mask is 48x48 but its image"):
        import_dataset(IMPORTERS["idrid-seg512"], src, tmp_path / "out", 32, show_progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    (src / "masks_png" / "IDRiD_02_MA.png").write_bytes(b"\x89PNG\r\n\x1a\n trunc")
    with pytest.raises(RetinaError, match="unreadable or truncated"):
        import_dataset(IMPORTERS["idrid-seg512"], src, tmp_path / "out", 32, show_progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_cli_import_and_errors(tmp_path, capsys):
    from retina.cli import main

    src = write_seg512(tmp_path / "seg512", n=1)
    main(["data", "import", "--format", "idrid-seg512", str(src), "--out", str(tmp_path / "out"), "--res", "32"])
    assert "imported 1 images (idrid-seg512)" in capsys.readouterr().out
    assert read_mask(tmp_path / "out" / "masks" / "ma" / "IDRiD_01.png").shape == (32, 32)
    for argv, message in [
        (["--format", "nope", str(src)], "unknown --format 'nope'"),
        (["--format", "drive", str(src)], "expected 'training'"),
        (["--format", "idrid-seg512", str(src)], "already exists"),
    ]:
        with pytest.raises(SystemExit) as done:
            main(["data", "import", *argv, "--out", str(tmp_path / "out"), "--res", "32"])
        err = capsys.readouterr().err
        assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
