"""Restoring a squashed photograph's aspect on import, and merging sets that share names (--duplicates first)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retina.cli import main
from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.data.importers import get_importer
from retina.data.importers.base import parse_aspect
from retina.data.importers.pipeline import import_dataset
from retina.data.merge import merge_datasets


def squashed_seg512(root: Path, width: int = 96, height: int = 64) -> Path:
    """An idrid-seg512 layout whose photograph is a round fundus (and round disc) squashed into a square."""
    yy, xx = np.mgrid[:height, :width]
    fundus = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (height / 2 - 1) ** 2
    disc = (yy - 32) ** 2 + (xx - 70) ** 2 < 8 ** 2
    image = np.zeros((height, width, 3), np.uint8)
    image[fundus] = (200, 90, 40)
    image[disc] = (250, 220, 150)
    (root / "images").mkdir(parents=True)
    (root / "masks_png").mkdir()
    square = (height, height)  # the third party's squash: width shrunk by 1.5
    Image.fromarray(image).resize(square, Image.BICUBIC).save(root / "images" / "IDRiD_01.jpg", quality=95)
    Image.fromarray((disc * 255).astype(np.uint8)).resize(square, Image.NEAREST).save(
        root / "masks_png" / "IDRiD_01_OD.png")
    return root


def disc_extent(mask_path: Path) -> tuple[int, int]:
    ys, xs = np.nonzero(np.array(Image.open(mask_path)) > 0)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def test_aspect_restored_makes_the_disc_round_again(tmp_path):
    src = squashed_seg512(tmp_path / "src")
    importer = get_importer("idrid-seg512")
    import_dataset(importer, src, tmp_path / "kept", 64, show_progress=False)  # 'auto': seg512 is not squashed
    import_dataset(importer, src, tmp_path / "restored", 64, aspect=(3, 2), show_progress=False)
    kept_h, kept_w = disc_extent(tmp_path / "kept" / "masks" / "od" / "IDRiD_01.png")
    h, w = disc_extent(tmp_path / "restored" / "masks" / "od" / "IDRiD_01.png")
    assert kept_w < 0.8 * kept_h  # squashed: an upright ellipse
    assert abs(h - w) <= 2  # restored: round within the pixel grid
    info = json.loads((tmp_path / "restored" / "retina.json").read_text())
    assert info["provenance"]["aspect_restored"].startswith("3:2")
    assert "aspect_restored" not in json.loads((tmp_path / "kept" / "retina.json").read_text())["provenance"]


@pytest.mark.parametrize("text, expected", [("auto", "auto"), ("none", None), ("4288:2848", (4288, 2848))])
def test_parse_aspect(text, expected):
    assert parse_aspect(text) == expected


@pytest.mark.parametrize("text", ["3x2", "0:2", "-3:2", "1.5", "3:", "inf:1"])
def test_parse_aspect_refuses(text, capsys, tmp_path):
    with pytest.raises(RetinaError, match="--aspect"):
        parse_aspect(text)
    src = squashed_seg512(tmp_path / "src")
    with pytest.raises(SystemExit) as done:
        main(["data", "import", "--format", "idrid-seg512", str(src), "--out", str(tmp_path / "o"), "--aspect", text])
    assert done.value.code == 2
    assert capsys.readouterr().err.startswith("error: --aspect")
    assert not (tmp_path / "o").exists()


def test_merge_duplicates_first_keeps_the_first_copy(tmp_path):
    from test_merge import shard  # tests/ is on sys.path (rootdir-less test modules)

    first = shard(tmp_path / "full", ["IDRiD_01", "IDRiD_02"])
    second = shard(tmp_path / "jpeg", ["IDRiD_02", "IDRiD_03"], size=16)
    with pytest.raises(RetinaError, match="--duplicates first"):
        merge_datasets([first, second], tmp_path / "refused", show_progress=False)
    assert not (tmp_path / "refused").exists()
    report = merge_datasets([first, second], tmp_path / "merged", keep_first=True, show_progress=False)
    merged = CanonicalDataset(tmp_path / "merged")
    assert report.count == 3 and merged.names == ["IDRiD_01", "IDRiD_02", "IDRiD_03"]
    kept = (tmp_path / "merged" / "images" / "IDRiD_02.png").read_bytes()
    assert kept == (first / "images" / "IDRiD_02.png").read_bytes() != (second / "images" / "IDRiD_02.png").read_bytes()
    parts = json.loads((tmp_path / "merged" / "retina.json").read_text())["provenance"]["merged_from"]
    assert parts[1]["left_out_as_duplicates"] == ["IDRiD_02"] and parts[1]["count"] == 1
