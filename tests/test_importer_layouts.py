"""Every importer's every channel lands where its lesion was drawn, on fixtures in each data set's published layout.

The folder and file names below are written out from the data sets' own documentation (IDRiD's IEEE Dataport
release, FGADR's Seg-set, DDR's lesion_segmentation, DRIVE, Kaggle's EyePACS and APTOS), not taken from the
importers' constants, so a renamed or swapped folder in an importer fails here. Each channel gets a blob at its own
position; the photograph is bright over the whole frame so that the field-of-view crop is the identity and a
64 px source maps to the 32 px canonical set by halving the coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_importers import save

from retina.common.canonical import CanonicalDataset
from retina.data.importers import get_importer
from retina.data.importers.pipeline import import_dataset

SIZE, OUT = 64, 32
# one distinct position per channel (source pixels); every other channel is empty there
POSITIONS = {"ma": (12, 12), "he": (12, 50), "ex": (50, 12), "se": (50, 50), "od": (32, 32), "nv": (20, 32),
             "vessels": (44, 32)}


def photograph(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.array([200, 90, 40]) + rng.integers(0, 20, (SIZE, SIZE, 3))).astype(np.uint8)


def blob(channel: str, r: int = 3) -> np.ndarray:
    y, x = POSITIONS[channel]
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - y) ** 2 + (xx - x) ** 2 <= r * r


def red_only(mask: np.ndarray) -> np.ndarray:
    """IDRiD's ground truths: RGB TIFFs with the lesion in the red channel."""
    rgb = np.zeros((*mask.shape, 3), np.uint8)
    rgb[mask, 0] = 255
    return rgb


def assert_channels_at_their_positions(out: Path, name: str, channels: list[str]) -> None:
    data = CanonicalDataset(out)
    masks = data.load_masks(name, channels)
    for i, channel in enumerate(channels):
        for other, (y, x) in POSITIONS.items():
            value = masks[i, y // 2, x // 2]
            if other == channel:
                assert value, f"{channel} missing at its lesion ({y}, {x})"
            elif other in channels:
                assert not value, f"{channel} drawn at {other}'s lesion ({y}, {x})"
        assert masks[i].sum() <= 4 * 3.2 * 3.2 + 8, f"{channel} larger than its one lesion"


def run_import(fmt: str, src: Path, out: Path) -> Path:
    report = import_dataset(get_importer(fmt), src, out, OUT, show_progress=False)
    assert report.out == out and report.format == fmt and report.count == len(CanonicalDataset(out))
    return out


def test_idrid_folders_and_suffixes(tmp_path):
    # IDRiD "A. Segmentation": 1. Original Images/a. Training Set/IDRiD_01.jpg and
    # 2. All Segmentation Groundtruths/a. Training Set/<n. Lesion>/IDRiD_01_<XX>.tif
    part = tmp_path / "A. Segmentation"
    save(part / "1. Original Images" / "a. Training Set" / "IDRiD_01.jpg", photograph(0))
    truths = part / "2. All Segmentation Groundtruths" / "a. Training Set"
    published = {"ma": ("1. Microaneurysms", "MA"), "he": ("2. Haemorrhages", "HE"), "ex": ("3. Hard Exudates", "EX"),
                 "se": ("4. Soft Exudates", "SE"), "od": ("5. Optic Disc", "OD")}
    for channel, (folder, suffix) in published.items():
        save(truths / folder / f"IDRiD_01_{suffix}.tif", red_only(blob(channel)))
    out = run_import("idrid", tmp_path, tmp_path / "out")
    assert_channels_at_their_positions(out, "IDRiD_01", list(published))


def test_idrid_grading_grade_per_image(tmp_path):
    part = tmp_path / "B. Disease Grading"
    for i, stem in enumerate(["IDRiD_001", "IDRiD_002", "IDRiD_003"]):
        save(part / "1. Original Images" / "a. Training Set" / f"{stem}.jpg", photograph(i))
    csv = part / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,3,2\nIDRiD_002,0,0\nIDRiD_003,4,1\n")
    data = CanonicalDataset(run_import("idrid-grading", tmp_path, tmp_path / "out"))
    assert {s.name: (s.grade, s.extra["macular_edema"]) for s in data.samples} == {
        "IDRiD_001": (3, "2"), "IDRiD_002": (0, "0"), "IDRiD_003": (4, "1")}


def test_fgadr_folders(tmp_path):
    # FGADR Seg-set: Original_Images/NAME.png, one folder per lesion with the same file name, grades CSV (no header)
    seg = tmp_path / "Seg-set"
    published = {"ma": "Microaneurysms_Masks", "he": "Hemohedge_Masks", "ex": "HardExudate_Masks",
                 "se": "SoftExudate_Masks", "nv": "Neovascularization_Masks"}
    for i, name in enumerate(["0001_2.png", "0002_4.png"]):
        save(seg / "Original_Images" / name, photograph(i))
        for channel, folder in published.items():
            save(seg / folder / name, blob(channel))
    (seg / "DR_Seg_Grading_Label.csv").write_text("0001_2.png,2\n0002_4.png,4\n")
    out = run_import("fgadr", tmp_path, tmp_path / "out")
    assert_channels_at_their_positions(out, "0002_4", list(published))
    assert {s.name: s.grade for s in CanonicalDataset(out).samples} == {"0001_2": 2, "0002_4": 4}


def test_ddr_folders(tmp_path):
    # DDR: lesion_segmentation/<split>/image/NAME.jpg, lesion_segmentation/<split>/label/<EX|HE|MA|SE>/NAME.tif,
    # DR_grading/<split>.txt with lines "NAME.jpg GRADE"
    root = tmp_path / "DDR-dataset"
    published = {"ex": "EX", "he": "HE", "ma": "MA", "se": "SE"}
    for folder, name in (("train", "007-0001-000"), ("valid", "007-0002-000")):
        save(root / "lesion_segmentation" / folder / "image" / f"{name}.jpg", photograph(0))
        for channel, sub in published.items():
            save(root / "lesion_segmentation" / folder / "label" / sub / f"{name}.tif", blob(channel))
    (root / "DR_grading").mkdir()
    (root / "DR_grading" / "train.txt").write_text("007-0001-000.jpg 3\n")
    (root / "DR_grading" / "valid.txt").write_text("007-0002-000.jpg 1\n")
    out = run_import("ddr", tmp_path, tmp_path / "out")
    for name in ("007-0001-000", "007-0002-000"):
        assert_channels_at_their_positions(out, name, list(published))
    assert {(s.name, s.grade, s.split) for s in CanonicalDataset(out).samples} == {
        ("007-0001-000", 3, "train"), ("007-0002-000", 1, "val")}


def test_drive_folders(tmp_path):
    # DRIVE: training/images/21_training.tif, training/1st_manual/21_manual1.gif, training/mask/21_training_mask.gif
    root = tmp_path / "DRIVE"
    save(root / "training" / "images" / "21_training.tif", photograph(0))
    save(root / "training" / "1st_manual" / "21_manual1.gif", blob("vessels"), mode="P")
    fov = np.ones((SIZE, SIZE), bool)
    fov[:16, :16] = False  # DRIVE's own field of view, not the one the (bright everywhere) photograph suggests
    save(root / "training" / "mask" / "21_training_mask.gif", fov, mode="L")
    out = run_import("drive", root, tmp_path / "out")
    assert_channels_at_their_positions(out, "21_training", ["vessels"])
    assert np.array_equal(CanonicalDataset(out).load_masks("21_training", ["fov"])[0], fov[::2, ::2])


def test_idrid_seg512_suffixes(tmp_path):
    root = tmp_path / "idrid-1"
    save(root / "images" / "IDRiD_01.jpg", photograph(0))
    published = {"ma": "MA", "he": "HE", "ex": "EX", "se": "SE", "od": "OD"}
    for channel, suffix in published.items():
        save(root / "masks_png" / f"IDRiD_01_{suffix}.png", blob(channel), mode="1")
    out = run_import("idrid-seg512", root, tmp_path / "out")
    assert_channels_at_their_positions(out, "IDRiD_01", list(published))


@pytest.mark.parametrize("fmt, csv_name, header, folder, suffix", [
    ("eyepacs", "trainLabels.csv", "image,level", "train", ".jpeg"),
    ("aptos", "train.csv", "id_code,diagnosis", "train_images", ".png"),
])
def test_grades_only_grade_per_image(tmp_path, fmt, csv_name, header, folder, suffix):
    root = tmp_path / fmt
    grades = {"10_left": 0, "10_right": 2, "13_left": 4}
    for i, name in enumerate(grades):
        save(root / folder / f"{name}{suffix}", photograph(i))
    (root / csv_name).write_text(header + "\n" + "".join(f"{n},{g}\n" for n, g in grades.items()))
    data = CanonicalDataset(run_import(fmt, root, tmp_path / "out"))
    assert {s.name: s.grade for s in data.samples} == grades


def test_blank_photographs_are_flagged_up_to_the_blank_level(tmp_path):
    from retina.data.importers.pipeline import BLANK_LEVEL

    root = tmp_path / "eyepacs"
    for name, level in (("1_left", BLANK_LEVEL), ("1_right", BLANK_LEVEL + 1)):
        save(root / "train" / f"{name}.png", np.full((SIZE, SIZE, 3), level, np.uint8))
    (root / "trainLabels.csv").write_text("image,level\n1_left,0\n1_right,1\n")
    report = import_dataset(get_importer("eyepacs"), root, tmp_path / "out", OUT, show_progress=False)
    assert report.suspicious == {"blank photographs kept (every pixel dark)": ["1_left"]}


def test_missing_or_bad_published_files_are_named_with_their_role(tmp_path):
    """One-line errors name the file, what it is for and the --format whose layout expects it."""
    from retina.common.errors import RetinaError

    drive = tmp_path / "DRIVE"
    save(drive / "training" / "images" / "21_training.tif", photograph(0))
    save(drive / "training" / "1st_manual" / "21_manual1.gif", blob("vessels"), mode="P")
    with pytest.raises(RetinaError, match=r"21_training_mask.gif: not found \(field-of-view mask\); expected by the "
                                          r"--format drive layout"):
        import_dataset(get_importer("drive"), drive, tmp_path / "o", OUT, show_progress=False)
    save(drive / "training" / "mask" / "21_training_mask.gif", np.ones((40, 40), bool), mode="L")
    with pytest.raises(RetinaError, match=r"21_training_mask.gif: mask is 40x40 but its image"):  # the FOV is named
        import_dataset(get_importer("drive"), drive, tmp_path / "o", OUT, show_progress=False)
    (drive / "training" / "1st_manual" / "21_manual1.gif").unlink()
    with pytest.raises(RetinaError, match=r"21_manual1.gif: not found \(vessel tracing\); expected by the --format "
                                          r"drive layout"):
        import_dataset(get_importer("drive"), drive, tmp_path / "o", OUT, show_progress=False)

    seg = tmp_path / "fgadr" / "Seg-set"
    save(seg / "Original_Images" / "0001_2.png", photograph(0))
    with pytest.raises(RetinaError, match=r"DR_Seg_Grading_Label.csv: not found \(the grades, lines 'name,grade'\); "
                                          r"expected by the --format fgadr layout"):
        import_dataset(get_importer("fgadr"), tmp_path / "fgadr", tmp_path / "o", OUT, show_progress=False)
    (seg / "DR_Seg_Grading_Label.csv").write_text("0001_2.png,9\n")
    with pytest.raises(RetinaError, match=r"DR_Seg_Grading_Label.csv:1: grade '9'"):
        import_dataset(get_importer("fgadr"), tmp_path / "fgadr", tmp_path / "o", OUT, show_progress=False)

    part = tmp_path / "idrid" / "A. Segmentation"
    save(part / "1. Original Images" / "a. Training Set" / "IDRiD_01.jpg", photograph(0))
    (part / "2. All Segmentation Groundtruths").mkdir(parents=True)
    with pytest.raises(RetinaError, match=r"a. Training Set: not found \(masks for a. Training Set\); expected by the "
                                          r"--format idrid layout"):
        import_dataset(get_importer("idrid"), tmp_path / "idrid", tmp_path / "o", OUT, show_progress=False)
    grading = tmp_path / "grading" / "B. Disease Grading" / "2. Groundtruths"
    grading.mkdir(parents=True)
    with pytest.raises(RetinaError, match=r"this is IDRiD 'B. Disease Grading'; import it with --format idrid-grading"):
        import_dataset(get_importer("idrid"), tmp_path / "grading", tmp_path / "o", OUT, show_progress=False)

    ddr = tmp_path / "DDR-dataset" / "DR_grading"
    ddr.mkdir(parents=True)
    (ddr / "train.txt").write_bytes(b"007-0001-000.jpg 2\n\xff\xfe bad bytes\n")  # undecodable: one clear line
    save(tmp_path / "DDR-dataset" / "lesion_segmentation" / "train" / "image" / "007-0001-000.jpg", photograph(0))
    with pytest.raises(RetinaError, match=r"train.txt:2: expected 'NAME.jpg GRADE'"):
        import_dataset(get_importer("ddr"), tmp_path / "DDR-dataset", tmp_path / "o", OUT, show_progress=False)
    assert not (tmp_path / "o").exists()


def test_layout_errors_name_the_format_and_the_missing_part(tmp_path):
    from retina.common.errors import RetinaError

    for fmt, expected in (("ddr", "lesion_segmentation"), ("idrid-seg512", "masks_png")):
        with pytest.raises(RetinaError, match=rf"expected '{expected}'.*--format {fmt}"):
            import_dataset(get_importer(fmt), tmp_path, tmp_path / "o", OUT, show_progress=False)
    grading = tmp_path / "grading" / "B. Disease Grading"
    csv = grading / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("Image name,Retinopathy grade,Risk of macular edema\nIDRiD_001,3,2\n")
    with pytest.raises(RetinaError, match=r"a. Training Set: not found \(the training photographs\); expected by the "
                                          r"--format idrid-grading layout"):
        import_dataset(get_importer("idrid-grading"), tmp_path / "grading", tmp_path / "o", OUT, show_progress=False)
    root = tmp_path / "idrid-1"
    save(root / "images" / "IDRiD_01.jpg", photograph(0))
    save(root / "masks_png" / "IDRiD_01_MA.png", np.zeros((40, 48), bool), mode="1")  # width 48, height 40
    with pytest.raises(RetinaError, match=r"IDRiD_01_MA.png: mask is 48x40 but its image"):
        import_dataset(get_importer("idrid-seg512"), root, tmp_path / "o", OUT, show_progress=False)
    (root / "masks_png" / "IDRiD_01_MA.png").unlink()
    report = import_dataset(get_importer("idrid-seg512"), root, tmp_path / "o", OUT, show_progress=False)
    assert "skipped: none" in report.summary_line()
