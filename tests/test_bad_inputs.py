"""Bad inputs across every command (issue 6, hardening): each ends in one ``error:`` line and exit 2, or is
handled and reported, and never leaves partial output behind.

Every case builds its own broken input in ``tmp_path`` (from one tiny phantom set and a few hand-made source
layouts), runs ``retina.cli.main`` in-process, and checks the exit code, that stderr is exactly one line, and
that neither the ``--out`` folder nor any ``*.partial`` file exists afterwards.
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retina.cli import main

SIZE = 32

# -- building blocks for broken files -------------------------------------------------------------------


def photo(size: int = 48, seed: int = 0) -> np.ndarray:
    """A small fundus-like RGB image: a bright disc on black (so the FOV crop finds something)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.45) ** 2
    image = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
    return image * disc[..., None].astype(np.uint8)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def png_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A PNG whose header claims ``width x height`` pixels (the pixel data is never reached)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def jpeg_bomb(path: Path, side: int = 30000) -> Path:
    """A small JPEG whose frame header (SOF0) is patched to claim ``side x side`` pixels."""
    save(path, photo(), format="JPEG")
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


def rewrite_labels(root: Path, edit: Callable[[list[list[str]]], list[list[str]]]) -> None:
    labels = root / "labels.csv"
    with open(labels, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    with open(labels, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(edit(rows))


def first_row(root: Path) -> list[str]:
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def edit_info(root: Path, kind: str) -> None:
    """Break retina.json in one way (its types, its numbers, or its agreement with the files)."""
    import json

    path = root / "retina.json"
    info = json.loads(path.read_text("utf-8"))
    text = None
    if kind == "list":
        text = "[1, 2, 3]"
    elif kind == "nan-resolution":
        text = path.read_text("utf-8").replace(f'"resolution": {SIZE}', '"resolution": NaN')
    elif kind == "overflow-resolution":
        text = path.read_text("utf-8").replace(f'"resolution": {SIZE}', '"resolution": 1e999')
    elif kind == "text-resolution":
        info["resolution"] = str(SIZE)
    elif kind == "negative-resolution":
        info["resolution"] = -SIZE
    elif kind == "unknown-channel":
        info["channels"] = [*info["channels"], "tumour"]
    elif kind == "count-mismatch":
        info["count"] = info["count"] + 5
    elif kind == "resolution-lies":
        info["resolution"] = SIZE * 2
    else:
        raise AssertionError(kind)
    path.write_text(text if text is not None else json.dumps(info))


def first_name(root: Path) -> str:
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        return next(csv.DictReader(handle))["name"]


def eyepacs(root: Path, n: int = 3, suffix: str = ".jpeg") -> Path:
    """A minimal EyePACS layout: ``trainLabels.csv`` and ``train/NAME.jpeg``."""
    rows = [["image", "level"]]
    for i in range(n):
        save(root / "train" / f"{i}_left{suffix}", photo(seed=i))
        rows.append([f"{i}_left", str(i % 5)])
    with open(root / "trainLabels.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return root


def seg512(root: Path, n: int = 2) -> Path:
    """A minimal idrid-seg512 layout: ``images/IDRiD_NN.jpg`` and ``masks_png/IDRiD_NN_XX.png``."""
    for i in range(1, n + 1):
        save(root / "images" / f"IDRiD_{i:02d}.jpg", photo(seed=i))
        mask = np.zeros((48, 48), np.uint8)
        mask[20:24, 20:24] = 255
        save(root / "masks_png" / f"IDRiD_{i:02d}_EX.png", mask)
    return root


def write_checkpoint(path: Path, config: dict) -> Path:
    import torch

    from retina.common.checkpoint import save_checkpoint

    save_checkpoint(path, {"weight": torch.zeros(2, 2)}, config, {})
    return path.with_suffix(".safetensors") if path.suffix != ".safetensors" else path


# -- the cases ---------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    tmp: Path
    phantom: Path  # a pristine tiny phantom set: copy it before breaking it

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    @property
    def keep(self) -> Path:
        """A marker in a pre-existing --out: the command must leave it alone."""
        return self.out / "keep.txt"

    def existing_out(self) -> None:
        self.out.mkdir()
        self.keep.write_text("keep")

    def copy(self, name: str = "set") -> Path:
        return Path(shutil.copytree(self.phantom, self.tmp / name))


@dataclass
class Case:
    id: str
    build: Callable[[Ctx], list[str]]  # makes the broken input, returns argv
    handled: bool = False  # True: exit 0 and a report; False: one error line and exit 2
    match: str = ""  # text the error line must contain; for a handled case, text its report must contain
    check: Callable[[Ctx], None] | None = None  # extra assertions on a handled case's output
    marks: list = field(default_factory=list)


def xfail(reason: str) -> list:
    return [pytest.mark.xfail(strict=True, reason=reason)]


def import_args(src: Path, fmt: str, ctx: Ctx, *extra: str) -> list[str]:
    return ["data", "import", str(src), "--format", fmt, "--out", str(ctx.out), "--res", str(SIZE), *extra]


def _eyepacs_broken(kind: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        src = eyepacs(ctx.tmp / "eyepacs")
        target = src / "train" / "1_left.jpeg"
        if kind == "truncated":
            truncate(target)
        elif kind == "zero-byte":
            target.write_bytes(b"")
        elif kind == "text":
            target.write_text("this is not a photograph\n")
        elif kind == "bomb":
            target.unlink()
            png_bomb(src / "train" / "1_left.png")
        elif kind == "jpeg-bomb":
            jpeg_bomb(target)
        return import_args(src, "eyepacs", ctx)

    return build


def _eyepacs_csv(text: str | bytes) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        src = eyepacs(ctx.tmp / "eyepacs")
        target = src / "trainLabels.csv"
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
        return import_args(src, "eyepacs", ctx)

    return build


def _eyepacs_odd_photo(mode: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        src = eyepacs(ctx.tmp / "eyepacs")
        (src / "train" / "2_left.jpeg").unlink()
        if mode == "blank":
            save(src / "train" / "2_left.png", np.zeros((48, 48, 3), np.uint8))
        elif mode == "48bit":
            import cv2

            assert cv2.imwrite(str(src / "train" / "2_left.png"), photo(seed=2).astype(np.uint16) * 257)
        elif mode == "16bit":
            grey = (photo(seed=2)[..., 0].astype(np.uint16) * 257)
            save(src / "train" / "2_left.png", grey)
            assert Image.open(src / "train" / "2_left.png").mode.startswith("I")
        else:
            Image.fromarray(photo(seed=2)).convert("P").save(src / "train" / "2_left.png")
        return import_args(src, "eyepacs", ctx)

    return build


def _eyepacs_clutter(ctx: Ctx) -> list[str]:
    src = eyepacs(ctx.tmp / "eyepacs")
    (src / "train" / "readme.txt").write_text("notes")
    (src / "train" / "Thumbs.db").write_bytes(b"\0\1\2")
    (src / "train" / ".DS_Store").write_bytes(b"\0")
    return import_args(src, "eyepacs", ctx)


def _imported(count: int) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        from retina.common.canonical import CanonicalDataset

        data = CanonicalDataset(ctx.out)
        assert len(data) == count
        for name in data.names:
            image = data.load_image(name)
            assert image.shape == (SIZE, SIZE, 3) and image.max() > 50, f"{name} lost its content"

    return check


def _seg512_broken(kind: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        src = seg512(ctx.tmp / "seg512")
        target = src / "masks_png" / "IDRiD_02_EX.png"
        if kind == "other-size":
            save(target, np.full((40, 40), 255, np.uint8))
        elif kind == "truncated":
            truncate(target, 0.4)
        elif kind == "zero-byte":
            target.write_bytes(b"")
        elif kind == "16bit":
            mask = np.zeros((48, 48), np.uint16)
            mask[10:14, 10:14] = 65535
            save(target, mask)
        elif kind == "palette":
            mask = np.zeros((48, 48), np.uint8)
            mask[10:14, 10:14] = 255
            Image.fromarray(mask).convert("P").save(target)
        elif kind == "bomb":
            png_bomb(target)
        elif kind == "duplicate-stem":
            save(src / "images" / "IDRiD_01.png", photo(seed=1))
        elif kind == "non-utf8-name":
            name = os.fsdecode(b"IDRiD_\xff\xfe")
            save(src / "images" / f"{name}.jpg", photo(seed=9))
        elif kind == "rgba-opaque-black":  # no lesion: black RGB under an opaque alpha
            rgba = np.zeros((48, 48, 4), np.uint8)
            rgba[..., 3] = 255
            save(target, rgba)
        elif kind == "rgba-alpha-coverage":  # lesion painted on a transparent layer: black RGB, alpha = coverage
            rgba = np.zeros((48, 48, 4), np.uint8)
            rgba[10:14, 10:14, 3] = 255
            save(target, rgba)
        return import_args(src, "idrid-seg512", ctx)

    return build


def _seg512_empty_ex(ctx: Ctx) -> None:
    from retina.common.canonical import CanonicalDataset

    masks = CanonicalDataset(ctx.out).load_masks("IDRiD_02", ["ex"])
    assert not masks.any(), f"an opaque black RGBA mask was read as {100 * masks.mean():.0f}% lesion"


def _seg512_small_ex(ctx: Ctx) -> None:
    from retina.common.canonical import CanonicalDataset

    _seg512_check(ctx)
    masks = CanonicalDataset(ctx.out).load_masks("IDRiD_02", ["ex"])
    assert masks.mean() < 0.1, f"alpha coverage read as {100 * masks.mean():.0f}% lesion"


def _rgba_set_check(ctx: Ctx) -> None:
    from retina.common.canonical import CanonicalDataset

    data = CanonicalDataset(ctx.tmp / "set")
    assert not data.load_masks(data.names[0], ["he"]).any(), "an opaque black RGBA mask read as lesion"


def _odd_out(kind: str, command: str) -> Callable[[Ctx], list[str]]:
    """An --out that cannot or must not be written: /proc/x, an existing file (with --overwrite), '.', afile/sub."""

    def build(ctx: Ctx) -> list[str]:
        afile = ctx.tmp / "afile.txt"
        afile.write_text("not a folder")
        out = {"proc": "/proc/retina-test/x", "file": str(afile), "dot": ".", "under-file": str(afile / "sub")}[kind]
        extra = ["--overwrite"] if kind == "file" and command not in ("layout-train", "split") else []
        return {
            "phantom": ["data", "phantom", "--n", "2", "--res", str(SIZE), "--out", out],
            "generate": ["generate", "--n", "2", "--res", str(SIZE), "--out", out, "--device", "cpu"],
            "layout-sample": ["layout", "sample", "--n", "2", "--res", str(SIZE), "--out", out, "--device", "cpu"],
            "import": ["data", "import", str(eyepacs(ctx.tmp / "eyepacs")), "--format", "eyepacs", "--res", str(SIZE),
                       "--out", out],
            "render": ["render", "--masks", str(ctx.phantom), "--out", out, "--device", "cpu"],
            "merge": ["data", "merge", str(ctx.phantom), str(renamed(ctx.copy())), "--out", out],
            "split": ["data", "split", str(ctx.phantom), "--train", out, "--heldout", str(ctx.out)],
            "export": ["data", "export", str(ctx.phantom), "--format", "monai", "--out", out],
            "layout-train": ["layout", "train", "--data", str(ctx.phantom), "--out", out, "--res", str(SIZE),
                             "--batch", "2", "--kimg", "0.002", "--channel-base", "2048", "--device", "cpu",
                             "--quiet"],
        }[command] + extra

    return build


def _seg512_check(ctx: Ctx) -> None:
    from retina.common.canonical import CanonicalDataset

    data = CanonicalDataset(ctx.out)
    assert len(data) == 2
    masks = data.load_masks("IDRiD_02", ["ex"])
    assert masks.shape == (1, SIZE, SIZE) and masks.any(), "the 16-bit/palette mask's lesion was lost"


def _ddr(kind: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        root = ctx.tmp / "ddr"
        save(root / "lesion_segmentation" / "train" / "image" / "007.jpg", photo())
        grading = root / "DR_grading"
        grading.mkdir(parents=True)
        text = {"malformed": "007.jpg 2 extra\n", "out-of-range": "007.jpg 9\n"}[kind]
        (grading / "train.txt").write_text(text)
        return import_args(root, "ddr", ctx)

    return build


def _fgadr(kind: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        root = ctx.tmp / "fgadr" / "Seg-set"
        save(root / "Original_Images" / "0001_1.png", photo())
        save(root / "Original_Images" / "0002_1.png", photo(seed=1))
        lines = "0001_1.png,2\n0002_1.png,3\n" if kind != "no-grade" else "0001_1.png,2\n"
        (root / "DR_Seg_Grading_Label.csv").write_text(lines)
        if kind == "irma-other-size":
            save(root / "IRMA_Masks" / "0002_1.png", np.full((20, 20), 255, np.uint8))
        if kind == "tiff-mask-truncated":
            truncate(save(root / "HardExudate_Masks" / "0002_1.png", np.full((48, 48), 255, np.uint8)), 0.3)
        return import_args(ctx.tmp / "fgadr", "fgadr", ctx)

    return build


def _drive_missing_tracing(ctx: Ctx) -> list[str]:
    src = ctx.tmp / "drive"
    save(src / "training" / "images" / "21_training.tif", photo())
    save(src / "training" / "mask" / "21_training_mask.gif", np.full((48, 48), 255, np.uint8))
    (src / "training" / "1st_manual").mkdir(parents=True)
    return import_args(src, "drive", ctx)


def _grading_csv_unknown_image(ctx: Ctx) -> list[str]:
    root = ctx.tmp / "idrid" / "B. Disease Grading"
    save(root / "1. Original Images" / "a. Training Set" / "IDRiD_001.jpg", photo())
    truth = root / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv"
    truth.parent.mkdir(parents=True)
    truth.write_text("Image name,Retinopathy grade,Risk of macular edema\nIDRiD_001,2,0\nIDRiD_777,3,1\n")
    return import_args(ctx.tmp / "idrid", "idrid-grading", ctx)


def _set_broken(kind: str, command: str) -> Callable[[Ctx], list[str]]:
    """Break a copy of the phantom set in one way and run ``command`` on it."""

    def build(ctx: Ctx) -> list[str]:
        root = ctx.copy()
        name = first_name(root)
        if kind == "truncated-image":
            truncate(root / "images" / f"{name}.png")
        elif kind == "zero-byte-image":
            (root / "images" / f"{name}.png").write_bytes(b"")
        elif kind == "truncated-mask":
            truncate(root / "masks" / "vessels" / f"{name}.png")
        elif kind == "bomb-mask":
            png_bomb(root / "masks" / "he" / f"{name}.png")
        elif kind == "zero-byte-mask":
            (root / "masks" / "vessels" / f"{name}.png").write_bytes(b"")
        elif kind == "mask-other-size":
            save(root / "masks" / "ex" / f"{name}.png", np.zeros((SIZE // 2, SIZE // 2), np.uint8))
        elif kind == "masks-half-size":  # every mask of one sample at half its photograph's size (issue 14)
            for channel in (root / "masks").iterdir():
                save(channel / f"{name}.png", np.zeros((SIZE // 2, SIZE // 2), np.uint8))
        elif kind == "bomb-image":
            png_bomb(root / "images" / f"{name}.png")
        elif kind == "non-utf8-stray":
            save(root / "images" / os.fsdecode(b"stray\xff.png"), photo(SIZE))
        elif kind == "missing-image":
            (root / "images" / f"{name}.png").unlink()
        elif kind == "no-labels":
            (root / "labels.csv").unlink()
        elif kind == "labels-missing-column":
            rewrite_labels(root, lambda rows: [[r[0], r[2]] for r in rows])
        elif kind == "labels-bad-grade":
            rewrite_labels(root, lambda rows: [rows[0], [rows[1][0], "7", *rows[1][2:]], *rows[2:]])
        elif kind == "labels-text-grade":
            rewrite_labels(root, lambda rows: [rows[0], [rows[1][0], "severe", *rows[1][2:]], *rows[2:]])
        elif kind == "labels-path-name":
            rewrite_labels(root, lambda rows: [rows[0], ["../../escaped", *rows[1][1:]], *rows[2:]])
        elif kind == "labels-duplicate":
            rewrite_labels(root, lambda rows: [*rows, rows[1]])
        elif kind == "labels-not-utf8":
            (root / "labels.csv").write_bytes((root / "labels.csv").read_bytes() + b"caf\xe9,2,train,x\n")
        elif kind == "labels-empty":
            rewrite_labels(root, lambda rows: rows[:1])
        elif kind == "dataset-json-corrupt":
            (root / "retina.json").write_text('{"resolution": 32,')
        elif kind == "no-masks":
            shutil.rmtree(root / "masks")
        elif kind == "no-images":
            shutil.rmtree(root / "images")
        elif kind == "not-a-folder":
            shutil.rmtree(root)
            root.write_text("a file, not a data set")
        elif kind == "labels-bom":  # Excel's "CSV UTF-8"
            (root / "labels.csv").write_bytes(b"\xef\xbb\xbf" + (root / "labels.csv").read_bytes())
        elif kind in ("labels-nan-grade", "labels-inf-grade"):
            value = "nan" if kind == "labels-nan-grade" else "inf"
            rewrite_labels(root, lambda rows: [rows[0], [rows[1][0], value, *rows[1][2:]], *rows[2:]])
        elif kind == "labels-nan-seed":
            column = first_row(root).index("seed")
            rewrite_labels(root, lambda rows: [rows[0], [*rows[1][:column], "nan", *rows[1][column + 1:]], *rows[2:]])
        elif kind == "labels-unknown-split":  # a typo that would move a held-out image into training
            rewrite_labels(root, lambda rows: [rows[0], [*rows[1][:2], "tset", *rows[1][3:]], *rows[2:]])
        elif kind.startswith("dataset-json-"):
            edit_info(root, kind.removeprefix("dataset-json-"))
        elif kind == "rgba-mask-opaque-black":  # GIMP/Photoshop: no lesion, opaque alpha
            rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
            rgba[..., 3] = 255
            save(root / "masks" / "he" / f"{name}.png", rgba)
        elif kind == "mostly-foreground-mask":
            save(root / "masks" / "he" / f"{name}.png", np.full((SIZE, SIZE), 255, np.uint8))
        out = str(ctx.out)
        png = str(ctx.tmp / "preview.png")
        merge_part = str(renamed(root)) if command == "merge" else ""
        return {
            "inspect": ["data", "inspect", str(root)],
            "inspect-json": ["data", "inspect", str(root), "--json"],
            "render": ["render", "--masks", str(root), "--out", out, "--device", "cpu"],
            "eval-layout": ["eval", "layout", "--real", str(root), "--fake", str(ctx.phantom), "--out",
                            str(ctx.out / "report.json"), "--no-classifier"],
            "preview": ["data", "preview", str(root), "--out", png],
            "merge": ["data", "merge", str(ctx.phantom), merge_part, "--out", out],
            "layout-train": ["layout", "train", "--data", str(root), "--out", out, "--res", str(SIZE), "--batch",
                             "2", "--kimg", "0.002", "--channel-base", "2048", "--channel-max", "8", "--device", "cpu",
                             "--quiet"],
            "render-train": ["render", "train", "--data", str(root), "--out", out, "--res", str(SIZE), "--batch",
                             "2", "--steps", "1", "--width", "8", "--grader", "tiny", "--grader-steps", "1",
                             "--no-perceptual", "--stage", "coarse", "--device", "cpu"],
            "fidelity": ["eval", "fidelity", "--real", str(root), "--fake", str(ctx.phantom), "--metrics", "swd",
                         "--res", str(SIZE), "--out", str(ctx.tmp / "out" / "fidelity.json"), "--device", "cpu"],
            "bench-grade": ["bench", "grade", "--real", str(root), "--synthetic", str(ctx.phantom), "--out", out,
                            "--width", "tiny", "--res", str(SIZE), "--epochs", "1", "--device", "cpu"],
            "bench-vessels": ["bench", "vessels", "--real", str(root), "--synthetic", str(ctx.phantom), "--out", out,
                              "--res", str(SIZE), "--width", "8", "--pretrain-epochs", "1", "--finetune-epochs", "1",
                              "--device", "cpu"],
            "train-aae": ["layout", "train-aae", "--data", str(root), "--out", out, "--res", str(SIZE), "--kimg",
                          "0.002", "--batch", "2", "--width", "8", "--latent", "8", "--device", "cpu", "--quiet"],
            "train-sketch": ["layout", "train-sketch", "--data", str(root), "--out", out, "--res", str(SIZE),
                             "--kimg", "0.002", "--batch", "2", "--width", "8", "--latent", "8", "--device", "cpu",
                             "--quiet"],
            "bench-segment": ["bench", "segment", "--real", str(root), "--out", out, "--ratios", "0",
                              "--epochs", "1", "--res", str(SIZE), "--width", "8", "--device", "cpu"],
        }[command]

    return build


def _existing_out(build: Callable[[Ctx], list[str]]) -> Callable[[Ctx], list[str]]:
    """Run ``build``'s command with an --out that already exists: it must be refused and left untouched."""

    def wrapped(ctx: Ctx) -> list[str]:
        argv = build(ctx)
        ctx.existing_out()
        return argv

    return wrapped


def _corrupt_weights(filename: str) -> Callable[[Ctx], list[str]]:
    """A weights folder holding a file of the right name but wrong content (a pickle, too): sha256 refuses it."""

    def build(ctx: Ctx) -> list[str]:
        import pickle

        folder = ctx.tmp / "weights"
        folder.mkdir()
        (folder / filename).write_bytes(pickle.dumps({"not": "weights"}))
        return ["eval", "fidelity", "--real", str(ctx.phantom), "--fake", str(ctx.phantom), "--metrics", "fid",
                "--weights-dir", str(folder), "--out", str(ctx.out / "report.json"), "--device", "cpu"]

    return build


def renamed(root: Path, prefix: str = "b_") -> Path:
    """The same set under other sample names and seeds, so that it can be merged with the original."""
    if not (root / "labels.csv").is_file():
        return root
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    for folder in [root / "images", *(root / "masks").glob("*")]:
        for path in folder.glob("*.png") if folder.is_dir() else []:
            path.rename(path.with_name(prefix + path.name))
    seed = rows[0].index("seed") if "seed" in rows[0] else None

    def edit(rows: list[list[str]]) -> list[list[str]]:
        body = [[prefix + r[0], *r[1:]] for r in rows[1:]]
        if seed is not None:
            for r in body:
                r[seed] = r[seed] + "1"
        return [rows[0], *body]

    rewrite_labels(root, edit)
    return root


def _merge(kind: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        out = ["--out", str(ctx.out)]
        if kind == "same-twice":
            return ["data", "merge", str(ctx.phantom), str(ctx.phantom), *out]
        if kind == "missing-part":
            return ["data", "merge", str(ctx.phantom), str(ctx.tmp / "nowhere"), *out]
        from retina.phantom.dataset import write_phantom

        other = write_phantom(ctx.tmp / "other", n=2, size=SIZE * 2, grades=[1], seed=5)
        return ["data", "merge", str(ctx.phantom), str(other), *out]

    return build


def _checkpoint(kind: str, command: str) -> Callable[[Ctx], list[str]]:
    """A bad checkpoint file handed to a command that loads one."""

    def build(ctx: Ctx) -> list[str]:
        if kind == "pickle":
            import torch

            path = ctx.tmp / "model.pt"
            torch.save({"weight": torch.zeros(2)}, path)
        elif kind == "pkl":
            path = ctx.tmp / "model.pkl"
            path.write_bytes(b"\x80\x04\x95\x00\x00")
        elif kind == "truncated":
            path = truncate(write_checkpoint(ctx.tmp / "model", {"kind": "layout", "arch": "stylegan"}), 0.6)
        elif kind == "truncated-run":  # a run folder whose last checkpoint was cut short
            path = ctx.tmp / "run"
            path.mkdir()
            (path / "config.json").write_text('{"config": {}}')
            truncate(write_checkpoint(path / "last", {"kind": "layout", "arch": "stylegan"}), 0.6)
        elif kind == "zero-byte":
            path = ctx.tmp / "model.safetensors"
            path.write_bytes(b"")
        elif kind == "other-kind":
            other = "layout" if command == "annotate" else "segmenter"
            path = write_checkpoint(ctx.tmp / "model", {"kind": other, "arch": "unet"})
        elif kind == "segmenter-no-config":
            path = write_checkpoint(ctx.tmp / "model", {"kind": "segmenter", "arch": "unet"})
        elif kind == "other-arch":
            path = write_checkpoint(ctx.tmp / "model", {"kind": "layout" if command != "render" else "render",
                                                        "arch": "no-such-arch"})
        elif kind == "missing":
            path = ctx.tmp / "nowhere.safetensors"
        elif kind == "nan-res":
            path = write_checkpoint(ctx.tmp / "model", {"kind": "layout", "arch": "stylegan",
                                                        "generator": {"res": float("nan")}})
        elif kind == "negative-width":
            path = write_checkpoint(ctx.tmp / "model", {"kind": "render", "arch": "drgan", "res": SIZE, "width": -8})
        elif kind == "kind-number":
            path = write_checkpoint(ctx.tmp / "model", {"kind": 5, "arch": "stylegan"})
        elif kind == "config-list":  # safetensors written by another tool, with a JSON list as retina's metadata
            import torch
            from safetensors.torch import save_file

            path = ctx.tmp / "model.safetensors"
            save_file({"weight": torch.zeros(2)}, str(path), metadata={"retina": "[1, 2]"})
        elif kind == "png":  # an image handed over as a checkpoint
            path = save(ctx.tmp / "x.png", photo())
        elif kind == "labels-csv":
            path = ctx.phantom / "labels.csv"
        elif kind == "layout-run":  # a layout run folder handed to the renderer's --resume
            path = ctx.tmp / "layout-run"
            path.mkdir()
            write_checkpoint(path / "last", {"kind": "layout", "arch": "stylegan", "generator": {}, "training": {}})
        else:
            raise AssertionError(kind)
        out = str(ctx.out)
        return {
            "layout-sample": ["layout", "sample", "--checkpoint", str(path), "--n", "2", "--res", str(SIZE),
                              "--out", out, "--device", "cpu"],
            "generate-layout": ["generate", "--layout", str(path), "--n", "2", "--res", str(SIZE),
                                "--out", out, "--device", "cpu"],
            "render": ["generate", "--renderer", str(path), "--n", "2", "--res", str(SIZE), "--out", out,
                       "--device", "cpu"],
            "render-masks": ["render", "--masks", str(ctx.phantom), "--checkpoint", str(path), "--out", out,
                             "--device", "cpu"],
            "render-init": ["render", "train", "--data", str(ctx.phantom), "--out", out, "--init", str(path),
                            "--res", str(SIZE), "--batch", "2", "--steps", "1", "--width", "8", "--grader", "tiny",
                            "--no-perceptual", "--device", "cpu"],
            "render-resume": ["render", "train", "--resume", str(path), "--device", "cpu"],
            "vessels": ["layout", "sample", "--vessels", "aae", "--vessels-checkpoint", str(path), "--n", "2",
                        "--res", str(SIZE), "--out", out, "--device", "cpu"],
            "layout-resume": ["layout", "train", "--resume", str(path), "--device", "cpu", "--quiet"],
            "annotate": ["data", "annotate", "--segmenter", str(path), "--images", str(ctx.phantom), "--out", out,
                         "--device", "cpu"],
        }[command]

    return build


def _argv(*argv: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        return [a.replace("{out}", str(ctx.out)).replace("{phantom}", str(ctx.phantom)).replace("{tmp}", str(ctx.tmp))
                for a in argv]

    return build


CASES = [
    # data import: photographs
    Case("import-truncated-jpeg", _eyepacs_broken("truncated"), match="truncated"),
    Case("import-zero-byte-jpeg", _eyepacs_broken("zero-byte"), match="empty"),
    Case("import-text-as-jpeg", _eyepacs_broken("text"), match="unreadable"),
    Case("import-png-bomb", _eyepacs_broken("bomb"), match="exceeds the limit"),
    Case("import-jpeg-bomb", _eyepacs_broken("jpeg-bomb"), match="30000x30000 pixels exceeds the limit"),
    Case("import-16bit-png", _eyepacs_odd_photo("16bit"), handled=True, match="imported 3", check=_imported(3)),
    Case("import-16bit-rgb-png", _eyepacs_odd_photo("48bit"), handled=True, match="imported 3", check=_imported(3)),
    Case("import-blank-photo-reported", _eyepacs_odd_photo("blank"), handled=True,
         match="1 blank photographs kept (every pixel dark) (e.g. 2_left)"),
    Case("import-palette-png", _eyepacs_odd_photo("palette"), handled=True, match="imported 3",
         check=_imported(3)),
    Case("import-non-images-in-folder", _eyepacs_clutter, handled=True, match="imported 3", check=_imported(3)),
    # data import: label files
    Case("import-csv-missing-column", _eyepacs_csv("image,grade\n0_left,1\n"), match="missing column"),
    Case("import-csv-bad-grade", _eyepacs_csv("image,level\n0_left,7\n"), match="outside 0-4"),
    Case("import-csv-text-grade", _eyepacs_csv("image,level\n0_left,severe\n"), match="not a number"),
    Case("import-csv-not-utf8", _eyepacs_csv(b"image,level\n0_left,1\ncaf\xe9,2\n"), match="UTF-8"),
    Case("import-csv-empty", _eyepacs_csv(b""), match="empty"),
    Case("import-csv-short-row", _eyepacs_csv("image,level\n0_left\n"), match="cell"),
    Case("import-csv-unknown-image", _grading_csv_unknown_image, match="IDRiD_777"),
    # data import: masks
    Case("import-mask-other-size", _seg512_broken("other-size"), match="do not belong together"),
    Case("import-mask-truncated", _seg512_broken("truncated"), match="IDRiD_02_EX"),
    Case("import-mask-zero-byte", _seg512_broken("zero-byte"), match="empty"),
    Case("import-mask-bomb", _seg512_broken("bomb"), match="exceeds the limit"),
    Case("import-mask-16bit", _seg512_broken("16bit"), handled=True, match="imported 2", check=_seg512_check),
    Case("import-mask-palette", _seg512_broken("palette"), handled=True, match="imported 2", check=_seg512_check),
    Case("import-non-utf8-filename", _seg512_broken("non-utf8-name"), handled=True,
         match="1 file name not valid UTF-8", check=_seg512_check),
    Case("import-out-exists", _existing_out(lambda ctx: import_args(eyepacs(ctx.tmp / "eyepacs"), "eyepacs", ctx)),
         match="already exists"),
    Case("import-duplicate-stem", _seg512_broken("duplicate-stem"), match="two photographs named 'IDRiD_01'"),
    Case("import-missing-vessel-tracing", _drive_missing_tracing, match="vessel tracing"),
    Case("import-ddr-grade-line-malformed", _ddr("malformed"), match="expected 'NAME.jpg GRADE'"),
    Case("import-ddr-grade-out-of-range", _ddr("out-of-range"), match="outside 0-4"),
    Case("import-fgadr-no-grade", _fgadr("no-grade"), match="no grade for image"),
    Case("import-fgadr-irma-other-size", _fgadr("irma-other-size"), match="do not belong together"),
    Case("import-fgadr-mask-truncated", _fgadr("tiff-mask-truncated"), match="truncated"),
    # data import: arguments
    Case("import-src-missing", _argv("data", "import", "{tmp}/nowhere", "--format", "eyepacs", "--out", "{out}"),
         match="not found"),
    Case("import-unknown-format", _argv("data", "import", "{tmp}", "--format", "kaggle", "--out", "{out}"),
         match="unknown --format"),
    Case("import-wrong-layout", _argv("data", "import", "{phantom}", "--format", "drive", "--out", "{out}"),
         match="expected 'training'"),
    # data inspect / preview on broken canonical sets
    Case("inspect-no-labels", _set_broken("no-labels", "inspect"), match="no labels.csv"),
    Case("inspect-labels-missing-column", _set_broken("labels-missing-column", "inspect"), match="missing column"),
    Case("inspect-labels-bad-grade", _set_broken("labels-bad-grade", "inspect"), match="outside 0-4"),
    Case("inspect-labels-text-grade", _set_broken("labels-text-grade", "inspect"), match="not a number"),
    Case("inspect-labels-path-name", _set_broken("labels-path-name", "inspect"), match="not a plain file stem"),
    Case("merge-labels-path-name", _set_broken("labels-path-name", "merge"), match="not a plain file stem"),
    Case("inspect-labels-duplicate", _set_broken("labels-duplicate", "inspect"), match="duplicate"),
    Case("inspect-labels-not-utf8", _set_broken("labels-not-utf8", "inspect"), match="UTF-8"),
    Case("inspect-labels-empty", _set_broken("labels-empty", "inspect"), match="empty"),
    Case("inspect-dataset-json-corrupt", _set_broken("dataset-json-corrupt", "inspect"), match="JSON"),
    Case("inspect-not-a-folder", _set_broken("not-a-folder", "inspect"), match="not found"),
    Case("inspect-truncated-image-reported", _set_broken("truncated-image", "inspect"), handled=True,
         match="unreadable"),
    Case("inspect-mask-other-size-reported", _set_broken("mask-other-size", "inspect"), handled=True,
         match="size mismatch"),
    Case("inspect-bomb-image-reported", _set_broken("bomb-image", "inspect"), handled=True, match="exceeds"),
    Case("inspect-non-utf8-stray-file", _set_broken("non-utf8-stray", "inspect"), handled=True,
         match="not listed in labels.csv"),
    Case("phantom-non-utf8-out", _argv("data", "phantom", "--n", "2", "--res", "32", "--out",
                                       os.fsdecode(b"{tmp}/out\xff")), handled=True, match="phantom: 2 images"),
    Case("preview-zero-byte-image", _set_broken("zero-byte-image", "preview"), handled=True, match="skipped"),
    Case("preview-bomb-image", _set_broken("bomb-image", "preview"), handled=True, match="skipped"),
    Case("preview-not-png", _argv("data", "preview", "{phantom}", "--out", "{tmp}/grid.jpg"), match="PNG"),
    # data merge
    Case("merge-same-set-twice", _merge("same-twice"), match="also in"),
    Case("merge-missing-part", _merge("missing-part"), match="not found"),
    Case("merge-other-resolution", _merge("other-resolution"), match="resolution"),
    Case("merge-labels-bad-grade", _set_broken("labels-bad-grade", "merge"), match="outside 0-4"),
    Case("merge-control-clean-parts", _set_broken("none", "merge"), handled=True, match="merged 2 sets, 20 samples"),
    Case("merge-missing-image-file", _set_broken("missing-image", "merge"), match="not found"),
    Case("merge-truncated-image", _set_broken("truncated-image", "merge"), match="truncated"),
    Case("merge-zero-byte-mask", _set_broken("zero-byte-mask", "merge"), match="empty"),
    Case("merge-mask-other-size", _set_broken("mask-other-size", "merge"), match="16x16 pixels in a 32px set"),
    Case("merge-bomb-image", _set_broken("bomb-image", "merge"), match="exceeds"),
    # data phantom
    Case("phantom-zero-images", _argv("data", "phantom", "--n", "0", "--res", "32", "--out", "{out}"),
         match="at least 1"),
    Case("phantom-bad-grade", _argv("data", "phantom", "--n", "2", "--grades", "7", "--out", "{out}"),
         match="outside 0-4"),
    # checkpoints
    Case("layout-sample-pickle", _checkpoint("pickle", "layout-sample"), match="model.pt"),
    Case("layout-sample-pkl", _checkpoint("pkl", "layout-sample"), match="model.pkl"),
    Case("layout-sample-truncated-ckpt", _checkpoint("truncated", "layout-sample"), match="truncated"),
    Case("layout-sample-zero-byte-ckpt", _checkpoint("zero-byte", "layout-sample"), match="model.safetensors"),
    Case("layout-sample-other-kind", _checkpoint("other-kind", "layout-sample"), match="segmenter"),
    Case("layout-sample-other-arch", _checkpoint("other-arch", "layout-sample"), match="no-such-arch"),
    Case("layout-sample-missing-ckpt", _checkpoint("missing", "layout-sample"), match="not found"),
    Case("layout-sample-bad-grade", _argv("layout", "sample", "--grade", "5", "--n", "2", "--res", "32", "--out",
                                          "{out}", "--device", "cpu"), match="outside 0-4"),
    Case("layout-sample-aae-without-checkpoint", _argv("layout", "sample", "--vessels", "aae", "--n", "2", "--res",
                                                      "32", "--out", "{out}", "--device", "cpu"), match="train-aae"),
    Case("layout-sample-vessels-ckpt-pickle", _checkpoint("pickle", "vessels"), match="model.pt"),
    Case("layout-sample-vessels-ckpt-other-kind", _checkpoint("other-kind", "vessels"), match="segmenter"),
    Case("generate-layout-pickle", _checkpoint("pickle", "generate-layout"), match="model.pt"),
    Case("generate-layout-truncated", _checkpoint("truncated", "generate-layout"), match="truncated"),
    Case("generate-render-other-kind", _checkpoint("other-kind", "render"), match="segmenter"),
    Case("generate-render-other-arch", _checkpoint("other-arch", "render"), match="no-such-arch"),
    Case("generate-render-pickle", _checkpoint("pickle", "render"), match="model.pt"),
    Case("generate-bad-shard", _argv("generate", "--n", "4", "--shard", "3/2", "--res", "32", "--out", "{out}",
                                     "--device", "cpu"), match="shard"),
    Case("generate-bad-grades", _argv("generate", "--n", "4", "--grades", "0-9", "--res", "32", "--out", "{out}",
                                      "--device", "cpu"), match="outside 0-4"),
    Case("generate-render-truncated", _checkpoint("truncated", "render"), match="truncated"),
    Case("layout-resume-truncated-last", _checkpoint("truncated-run", "layout-resume"), match="truncated"),
    Case("render-resume-truncated-last", _checkpoint("truncated-run", "render-resume"), match="truncated"),
    Case("layout-resume-pickle", _checkpoint("pickle", "layout-resume"), match="model.pt"),
    Case("annotate-segmenter-pickle", _checkpoint("pickle", "annotate"), match="model.pt"),
    Case("annotate-segmenter-other-kind", _checkpoint("other-kind", "annotate"), match="layout"),
    Case("annotate-segmenter-incomplete-config", _checkpoint("segmenter-no-config", "annotate"), match="model"),
    Case("render-train-init-pickle", _checkpoint("pickle", "render-init"), match="model.pt"),
    Case("render-train-resume-missing", _checkpoint("missing", "render-resume"), match="not found"),
    # option values out of range
    Case("layout-sample-zero-batch", _argv("layout", "sample", "--n", "2", "--batch", "0", "--res", "32", "--out",
                                          "{out}", "--device", "cpu"), match="--batch"),
    Case("layout-sample-unknown-device", _argv("layout", "sample", "--n", "2", "--res", "32", "--out", "{out}",
                                               "--device", "tpu"), match="unknown device"),
    Case("generate-res-too-small", _argv("generate", "--n", "2", "--res", "5", "--out", "{out}", "--device", "cpu"),
         match="too small"),
    Case("generate-shard-not-i-of-n", _argv("generate", "--n", "2", "--shard", "x", "--res", "32", "--out", "{out}",
                                            "--device", "cpu"), match="i/n"),
    Case("layout-train-res-not-power-of-two", _argv("layout", "train", "--data", "{phantom}", "--out", "{out}",
                                                    "--res", "33", "--device", "cpu", "--quiet"), match="power of two"),
    Case("render-train-unknown-arch", _argv("render", "train", "--data", "{phantom}", "--out", "{out}", "--arch",
                                            "bogus", "--device", "cpu"), match="unknown renderer"),
    Case("render-train-zero-batch", _argv("render", "train", "--data", "{phantom}", "--out", "{out}", "--res", "32",
                                          "--batch", "0", "--width", "8", "--grader", "tiny", "--grader-steps", "1",
                                          "--no-perceptual", "--device", "cpu"), match="--batch"),
    Case("bench-segment-bad-ratio", _argv("bench", "segment", "--real", "{phantom}", "--out", "{out}", "--ratios",
                                          "1.5", "--device", "cpu"), match="--ratios"),
    Case("bench-segment-unknown-channel", _argv("bench", "segment", "--real", "{phantom}", "--out", "{out}",
                                                "--channels", "xx", "--device", "cpu"), match="unknown channel"),
    Case("bench-grade-unknown-model", _argv("bench", "grade", "--real", "{phantom}", "--synthetic", "{phantom}",
                                            "--out", "{out}", "--model", "vgg", "--device", "cpu"), match="--model"),
    Case("merge-single-part", _argv("data", "merge", "{phantom}", "--out", "{out}"), match="at least two"),
    # retina render --masks
    Case("render-zero-byte-mask", _set_broken("zero-byte-mask", "render"), match="empty"),
    Case("render-mask-other-size", _set_broken("mask-other-size", "render"), match="sizes differ"),
    Case("render-truncated-mask", _set_broken("truncated-mask", "render"), match="truncated"),
    Case("render-bomb-mask", _set_broken("bomb-mask", "render"), match="exceeds"),
    Case("render-no-masks", _set_broken("no-masks", "render"), match="missing"),
    Case("render-labels-bad-grade", _set_broken("labels-bad-grade", "render"), match="outside 0-4"),
    Case("render-checkpoint-pickle", _checkpoint("pickle", "render-masks"), match="model.pt"),
    Case("render-checkpoint-other-kind", _checkpoint("other-kind", "render-masks"), match="segmenter"),
    Case("render-without-out", _argv("render", "--masks", "{phantom}", "--device", "cpu"), match="--out required"),
    # retina eval layout
    Case("eval-layout-zero-byte-mask", _set_broken("zero-byte-mask", "eval-layout"), match="empty"),
    Case("eval-layout-mask-other-size", _set_broken("mask-other-size", "eval-layout"), match="sizes differ"),
    Case("eval-layout-no-masks", _set_broken("no-masks", "eval-layout"), match="no mask channels"),
    Case("eval-layout-labels-bad-grade", _set_broken("labels-bad-grade", "eval-layout"), match="outside 0-4"),
    Case("eval-layout-masks-only-set", _set_broken("no-images", "eval-layout"), handled=True, match="layout score"),
    # trainers and evaluators on broken sets
    Case("layout-train-no-masks", _set_broken("no-masks", "layout-train"), match="masks"),
    Case("layout-train-not-a-dataset", _set_broken("no-labels", "layout-train"), match="no labels.csv"),
    Case("layout-train-zero-byte-mask", _set_broken("zero-byte-mask", "layout-train"), match="empty"),
    Case("render-train-no-images", _set_broken("no-images", "render-train"), match="images"),
    Case("render-train-labels-bad-grade", _set_broken("labels-bad-grade", "render-train"), match="outside 0-4"),
    Case("fidelity-truncated-image", _set_broken("truncated-image", "fidelity"), match="truncated"),
    Case("fidelity-missing-fake", _argv("eval", "fidelity", "--real", "{phantom}", "--fake", "{tmp}/nowhere",
                                        "--metrics", "swd", "--device", "cpu"), match="not found"),
    Case("fidelity-unknown-metric", _argv("eval", "fidelity", "--real", "{phantom}", "--fake", "{phantom}",
                                          "--metrics", "bogus", "--device", "cpu"), match="unknown metric"),
    Case("fidelity-fid-weights-missing", _argv("eval", "fidelity", "--real", "{phantom}", "--fake", "{phantom}",
                                               "--metrics", "fid", "--weights-dir", "{tmp}", "--out",
                                               "{out}/report.json", "--device", "cpu"), match="inception"),
    Case("fidelity-fid-weights-corrupt", _corrupt_weights("inception-2015-12-05.pt"), match="inception"),
    Case("weights-fetch-unknown-name", _argv("weights", "fetch", "nosuch", "--dest", "{out}"),
         match="unknown weights"),
    Case("fidelity-masks-only", _set_broken("no-images", "fidelity"), match="images"),
    Case("bench-grade-no-labels", _set_broken("no-labels", "bench-grade"), match="no labels.csv"),
    Case("bench-segment-no-masks", _set_broken("no-masks", "bench-segment"), match="masks"),
    Case("bench-vessels-no-masks", _set_broken("no-masks", "bench-vessels"), match="vessels"),
    Case("layout-train-truncated-mask", _set_broken("truncated-mask", "layout-train"), match="truncated"),
    Case("layout-train-bomb-mask", _set_broken("bomb-mask", "layout-train"), match="exceeds"),
    Case("layout-train-mask-other-size", _set_broken("mask-other-size", "layout-train"), match="size"),
    Case("layout-train-existing-out-untouched", _existing_out(_set_broken("labels-bad-grade", "layout-train")),
         match="outside 0-4"),
    Case("train-aae-no-vessels", _set_broken("no-masks", "train-aae"), match="vessels"),
    Case("train-sketch-no-images", _set_broken("no-images", "train-sketch"), match="images"),
    Case("render-train-truncated-image", _set_broken("truncated-image", "render-train"), match="truncated"),
    Case("render-train-zero-byte-mask", _set_broken("zero-byte-mask", "render-train"), match="empty"),
    Case("render-train-mask-other-size", _set_broken("mask-other-size", "render-train"), match="mask for the"),
    Case("render-train-masks-half-size", _set_broken("masks-half-size", "render-train"), match="mask for the"),
    Case("generate-out-exists", _existing_out(_argv("generate", "--n", "2", "--res", "32", "--out", "{out}",
                                                    "--device", "cpu")), match="exists"),
    Case("layout-sample-out-exists", _existing_out(_argv("layout", "sample", "--n", "2", "--res", "32", "--out",
                                                         "{out}", "--device", "cpu")), match="exists"),
    # -- issue 14: every case listed there ---------------------------------------------------------------------
    # 1. RGBA masks (opaque alpha, black RGB) are no lesion; alpha is coverage only where RGB is empty
    Case("import-mask-rgba-opaque-black", _seg512_broken("rgba-opaque-black"), handled=True, match="imported 2",
         check=_seg512_empty_ex),
    Case("import-mask-rgba-alpha-coverage", _seg512_broken("rgba-alpha-coverage"), handled=True, match="imported 2",
         check=_seg512_small_ex),
    Case("inspect-rgba-mask-not-lesion", _set_broken("rgba-mask-opaque-black", "inspect"), handled=True,
         match="no problems found", check=_rgba_set_check),
    Case("inspect-mostly-foreground-reported", _set_broken("mostly-foreground-mask", "inspect-json"), handled=True,
         match="100% of the he mask is foreground"),
    # 3./14. generate --resume with other options, and .gen_*.partial leftovers: test_generate_resume_* below
    # 2. two runs on one --out: test_second_writer_refused_while_locked below
    # 6. --out unwritable or odd
    *[Case(f"{command}-out-{kind}", _odd_out(kind, command), match=text)
      for kind, text in (("proc", "cannot create"), ("file", "is a file"), ("dot", "names an existing"),
                         ("under-file", "is a file, so nothing can be created"))
      for command in ("phantom", "generate", "layout-sample", "import", "render", "merge", "split", "layout-train",
                      "export")],
    # 7. negative seeds
    Case("generate-seed-negative", _argv("generate", "--n", "2", "--res", "32", "--seed", "-1", "--out", "{out}",
                                         "--device", "cpu"), match="--seed -1: must be at least 0"),
    Case("layout-sample-seed-negative", _argv("layout", "sample", "--n", "2", "--res", "32", "--seed", "-1",
                                              "--out", "{out}", "--device", "cpu"), match="--seed -1"),
    Case("phantom-seed-negative", _argv("data", "phantom", "--n", "2", "--res", "32", "--seed", "-1", "--out",
                                        "{out}"), match="--seed -1"),
    Case("phantom-seed-too-large", _argv("data", "phantom", "--n", "2", "--res", "32", "--seed", str(2**40),
                                         "--out", "{out}"), match="at most 4294967295"),
    # 8. memory estimated before anything is allocated or written
    Case("layout-train-batch-too-large", _argv("layout", "train", "--data", "{phantom}", "--out", "{out}", "--res",
                                               "32", "--batch", "100000", "--channel-base", "2048", "--device", "cpu",
                                               "--quiet"), match="needs about"),
    Case("generate-res-too-large-for-memory", _argv("generate", "--n", "2", "--res", "16000", "--out", "{out}",
                                                    "--device", "cpu"), match="needs about"),
    Case("layout-sample-res-too-large-for-memory", _argv("layout", "sample", "--n", "2", "--res", "16000", "--out",
                                                         "{out}", "--device", "cpu"), match="needs about"),
    Case("phantom-size-too-large-for-memory", _argv("data", "phantom", "--n", "2", "--res", "16000", "--out",
                                                    "{out}"), match="use --res"),
    Case("generate-res-100000", _argv("generate", "--n", "2", "--res", "100000", "--out", "{out}", "--device",
                                      "cpu"), match="--res 100000: must be at least 1 and at most 16384"),
    # 9. devices other than auto|cpu|cuda|cuda:N
    *[Case(f"{command}-device-{device}", _argv(*argv, "--device", device), match=f"--device {device}: unknown")
      for device in ("mps", "meta")
      for command, argv in (
          ("generate", ("generate", "--n", "2", "--res", "32", "--out", "{out}")),
          ("layout-sample", ("layout", "sample", "--n", "2", "--res", "32", "--out", "{out}")),
          ("render", ("render", "--masks", "{phantom}", "--out", "{out}")),
          ("layout-train", ("layout", "train", "--data", "{phantom}", "--out", "{out}", "--res", "32", "--quiet")),
      )],
    Case("render-device-cuda-text", _argv("render", "--masks", "{phantom}", "--out", "{out}", "--device",
                                          "cuda:x"), match="unknown device"),
    # 10. a run folder of another kind
    Case("render-train-resume-layout-run", _checkpoint("layout-run", "render-resume"),
         match="a layout/stylegan checkpoint, but a render checkpoint is needed"),
    # 11. retina.json that is not an object
    Case("inspect-dataset-json-list", _set_broken("dataset-json-list", "inspect"), match="not an object"),
    Case("render-dataset-json-list", _set_broken("dataset-json-list", "render"), match="not an object"),
    # 12. SIGTERM: test_signal_* below
    # 13. split into one folder twice: refused before writing
    Case("split-train-equals-heldout", _argv("data", "split", "{phantom}", "--train", "{out}", "--heldout", "{out}"),
         match="both"),
    Case("split-into-source", _argv("data", "split", "{phantom}", "--train", "{phantom}/train", "--heldout",
                                    "{out}"), match="inside the set being split"),
    # 16. misleading messages
    Case("inspect-labels-bom", _set_broken("labels-bom", "inspect"), handled=True, match="no problems found"),
    Case("render-labels-bom", _set_broken("labels-bom", "render"), handled=True, match="rendered 10 image(s)"),
    Case("generate-res-7-names-its-option", _argv("generate", "--n", "2", "--res", "7", "--out", "{out}",
                                                  "--device", "cpu"), match="use --res 16"),
    Case("phantom-size-7", _argv("data", "phantom", "--n", "2", "--res", "7", "--out", "{out}"),
         match="use --res 16"),
    Case("import-limit-zero", lambda ctx: import_args(eyepacs(ctx.tmp / "eyepacs"), "eyepacs", ctx, "--limit", "0"),
         match="--limit 0: must be at least 1"),
    Case("render-checkpoint-png", _checkpoint("png", "render-masks"), match="x.png: not a checkpoint"),
    Case("layout-sample-checkpoint-labels-csv", _checkpoint("labels-csv", "layout-sample"),
         match="labels.csv: not a checkpoint"),
    Case("generate-render-checkpoint-png", _checkpoint("png", "render"), match="x.png: not a checkpoint"),
    Case("render-checkpoint-missing-names-given", _checkpoint("missing", "render-masks"),
         match="nowhere.safetensors: checkpoint not found"),
    # -- class (a): non-finite or out-of-range numbers, wherever a number is read ----------------------------------
    Case("generate-truncation-nan", _argv("generate", "--n", "2", "--res", "32", "--truncation", "nan", "--out",
                                          "{out}", "--device", "cpu"), match="--truncation nan: not a finite number"),
    Case("layout-sample-truncation-inf", _argv("layout", "sample", "--n", "2", "--res", "32", "--truncation", "inf",
                                               "--out", "{out}", "--device", "cpu"), match="not a finite number"),
    Case("layout-train-lr-nan", _argv("layout", "train", "--data", "{phantom}", "--out", "{out}", "--res", "32",
                                      "--lr", "nan", "--device", "cpu", "--quiet"), match="--lr nan"),
    Case("layout-train-kimg-inf", _argv("layout", "train", "--data", "{phantom}", "--out", "{out}", "--res", "32",
                                        "--kimg", "inf", "--device", "cpu", "--quiet"), match="--kimg inf"),
    Case("layout-train-label-smoothing-2", _argv("layout", "train", "--data", "{phantom}", "--out", "{out}", "--res",
                                                 "32", "--label-smoothing", "2", "--device", "cpu", "--quiet"),
         match="at most 1"),
    Case("train-aae-negative-lr", _argv("layout", "train-aae", "--data", "{phantom}", "--out", "{out}", "--res",
                                        "32", "--lr", "-0.1", "--device", "cpu", "--quiet"), match="--lr -0.1"),
    Case("render-train-every-zero", _argv("render", "train", "--data", "{phantom}", "--out", "{out}", "--res", "32",
                                          "--every", "0", "--device", "cpu"), match="--every 0"),
    Case("render-train-kimg-nan", _argv("render", "train", "--data", "{phantom}", "--out", "{out}", "--res", "32",
                                        "--kimg", "nan", "--device", "cpu"), match="--kimg nan"),
    Case("split-fraction-nan", _argv("data", "split", "{phantom}", "--train", "{out}", "--heldout", "{tmp}/h",
                                     "--fraction", "nan"), match="--fraction nan"),
    Case("split-every-negative", _argv("data", "split", "{phantom}", "--train", "{out}", "--heldout", "{tmp}/h",
                                       "--every", "-2"), match="--every -2"),
    Case("preview-alpha-2", _argv("data", "preview", "{phantom}", "--out", "{tmp}/p.png", "--alpha", "2"),
         match="--alpha 2.0: must be at least 0 and at most 1"),
    Case("preview-per-grade-zero", _argv("data", "preview", "{phantom}", "--out", "{tmp}/p.png", "--per-grade", "0"),
         match="--per-grade 0"),
    Case("fidelity-max-images-negative", _argv("eval", "fidelity", "--real", "{phantom}", "--fake", "{phantom}",
                                               "--metrics", "swd", "--max-images", "-5", "--device", "cpu"),
         match="--max-images"),
    Case("bench-segment-epochs-zero", _argv("bench", "segment", "--real", "{phantom}", "--out", "{out}", "--epochs",
                                            "0", "--device", "cpu"), match="--epochs 0"),
    Case("generate-batch-negative", _argv("generate", "--n", "2", "--res", "32", "--batch", "-4", "--out", "{out}",
                                          "--device", "cpu"), match="--batch -4"),
    Case("generate-grades-nan", _argv("generate", "--n", "2", "--res", "32", "--grades", "nan", "--out", "{out}",
                                      "--device", "cpu"), match="not a finite number"),
    Case("render-grade-inf", _argv("render", "--masks", "{phantom}", "--grade", "inf", "--out", "{out}", "--device",
                                   "cpu"), match="not a finite number"),
    Case("inspect-labels-nan-grade", _set_broken("labels-nan-grade", "inspect"), match="not a finite number"),
    Case("inspect-labels-inf-grade", _set_broken("labels-inf-grade", "inspect"), match="not a finite number"),
    Case("render-train-labels-nan-grade", _set_broken("labels-nan-grade", "render-train"), match="not a finite"),
    Case("merge-labels-nan-seed", _set_broken("labels-nan-seed", "merge"), match="is not a whole number >= 0"),
    Case("inspect-labels-unknown-split", _set_broken("labels-unknown-split", "inspect"),
         match="split 'tset' is not one of train, val, test"),
    Case("inspect-dataset-json-nan-resolution", _set_broken("dataset-json-nan-resolution", "inspect"),
         match="NaN is not a JSON number"),
    Case("inspect-dataset-json-overflow", _set_broken("dataset-json-overflow-resolution", "inspect"),
         match="overflows to infinity"),
    Case("merge-dataset-json-text-resolution", _set_broken("dataset-json-text-resolution", "merge"),
         match='"resolution" is \'32\''),
    Case("render-dataset-json-negative-resolution", _set_broken("dataset-json-negative-resolution", "render"),
         match='"resolution" is -32'),
    Case("layout-train-dataset-json-unknown-channel", _set_broken("dataset-json-unknown-channel", "layout-train"),
         match="tumour"),
    Case("layout-sample-ckpt-nan-res", _checkpoint("nan-res", "layout-sample"), match="NaN is not a JSON number"),
    Case("generate-render-ckpt-negative-width", _checkpoint("negative-width", "render"),
         match='"width" is -8, not a whole number >= 1'),
    Case("layout-sample-ckpt-kind-number", _checkpoint("kind-number", "layout-sample"), match='"kind" is 5'),
    Case("render-ckpt-config-list", _checkpoint("config-list", "render-masks"), match="not an object"),
    Case("phantom-config-file-negative-seed", lambda ctx: (ctx.tmp / "c.json").write_text('{"seed": -1}') and [
        "data", "phantom", "--config", str(ctx.tmp / "c.json"), "--n", "2", "--res", "32", "--out", str(ctx.out)],
         match="--seed -1: must be at least 0"),
    # -- class (b): metadata that does not match its files --------------------------------------------------------
    Case("merge-dataset-json-resolution-lies", _set_broken("dataset-json-resolution-lies", "merge"),
         match="says resolution 64 but the files of"),
    Case("render-dataset-json-resolution-lies", _set_broken("dataset-json-resolution-lies", "render"),
         match="says resolution 64"),
    Case("inspect-resolution-disagrees-reported", _set_broken("dataset-json-resolution-lies", "inspect-json"),
         handled=True, match="retina.json says resolution 64"),
    Case("inspect-count-disagrees-reported", _set_broken("dataset-json-count-mismatch", "inspect-json"),
         handled=True, match='\\"count\\" is 15 but labels.csv has 10 row(s)'),
]


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory) -> Path:
    from retina.phantom.dataset import write_phantom

    return write_phantom(tmp_path_factory.mktemp("pristine") / "ph", n=10, size=SIZE, grades=[0, 1, 2, 3, 4],
                         seed=0)


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, phantom_set: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # `--out .` and other relative paths land in the case's own folder
    ctx = Ctx(tmp_path, phantom_set)
    argv = case.build(ctx)
    capsys.readouterr()
    code = 0
    try:
        main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    err = captured.err
    if case.handled:
        assert code == 0, f"expected the input to be handled, got exit {code}: {err}"
        assert case.match.lower() in (captured.out + err).lower(), f"not reported: {captured.out + err}"
        if case.check is not None:
            case.check(ctx)
    else:
        lines = err.strip("\n").splitlines()
        assert code == 2, f"expected exit 2, got {code}: {err[-2000:]}"
        assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {err[-2000:]}"
        assert case.match.lower() in lines[0].lower(), lines[0]
        if ctx.keep.exists():
            assert ctx.keep.read_text() == "keep", "an existing --out was touched"
        else:
            assert not ctx.out.exists(), f"partial output left in {ctx.out}"
    assert not _leftovers(tmp_path), _leftovers(tmp_path)
    assert not _leftovers(phantom_set), "the pristine set was modified"


def test_suite_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("command", ["phantom", "import", "merge"])
def test_interrupt_leaves_no_partial_output(command: str, phantom_set: Path, tmp_path: Path, capsys,
                                            monkeypatch) -> None:
    """Ctrl-C half-way through writing a data set: exit 130, one error line, no --out and no OUT.partial."""
    from retina.common.canonical import CanonicalWriter

    ctx = Ctx(tmp_path, phantom_set)
    argv = {
        "phantom": ["data", "phantom", "--n", "4", "--res", str(SIZE), "--out", str(ctx.out)],
        "import": import_args(eyepacs(tmp_path / "eyepacs"), "eyepacs", ctx),
        "merge": ["data", "merge", str(phantom_set), str(renamed(ctx.copy())), "--out", str(ctx.out)],
    }[command]
    original, calls = CanonicalWriter.add, []

    def add_then_interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CanonicalWriter, "add", add_then_interrupt)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip("\n").splitlines()
    assert exit_.value.code == 130 and err == ["error: interrupted"], err
    assert len(calls) == 2
    assert not ctx.out.exists()
    assert not _leftovers(tmp_path) and not list(tmp_path.glob("*.partial"))


# -- issue 14: the cases that need more than one command, a second process or a signal ---------------------------


def test_every_numeric_option_has_a_range_rule() -> None:
    """The number parser knows every int/float option of the CLI: a new option without a rule fails here."""
    import typer

    from retina.cli import app
    from retina.common.options import numeric_options, rule_for

    options = list(numeric_options(typer.main.get_command(app)))
    assert len(options) > 50
    lacking = [f"{path} {max(p.opts, key=len)}" for path, p in options if rule_for(path, max(p.opts, key=len)) is None]
    assert not lacking, f"numeric options without a rule in retina/common/options.py: {lacking}"


def _cli(*argv: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "retina.cli", *argv]


def _wait_for_rows(labels: Path, rows: int, process, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if labels.is_file() and len(labels.read_text("utf-8").splitlines()) > rows:
            return
        time.sleep(0.1)
    raise AssertionError(f"{labels} never reached {rows} rows")


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_signal_during_phantom_cleans_up_and_a_second_run_is_refused(signum: str, tmp_path: Path, capsys) -> None:
    """Issue 14, cases 2 and 12: while one `data phantom` writes OUT, a second run on OUT refuses in one line
    (the first one's files untouched); SIGTERM/SIGINT then end the first with exit 143/130, one line, and
    neither OUT nor OUT.partial left."""
    import signal
    import subprocess

    out = tmp_path / "ph"
    first = subprocess.Popen(_cli("data", "phantom", "--n", "2000", "--res", "32", "--out", str(out)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parents[1])
    try:
        _wait_for_rows(out.with_name("ph.partial") / "labels.csv", 3, first)
        with pytest.raises(SystemExit) as refused:
            main(["data", "phantom", "--n", "2", "--res", "32", "--out", str(out)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert refused.value.code == 2 and len(lines) == 1, lines
        assert f"another retina run (pid {first.pid}) is writing it" in lines[0]
        assert first.poll() is None, "the second run disturbed the first"
        first.send_signal(getattr(signal, signum))
        _, err = first.communicate(timeout=60)
    finally:
        first.kill() if first.poll() is None else None
    assert first.returncode == (143 if signum == "SIGTERM" else 130), err
    assert err.strip().splitlines() == [f"error: {'terminated (SIGTERM)' if signum == 'SIGTERM' else 'interrupted'}"]
    assert not out.exists() and not out.with_name("ph.partial").exists()


def test_trainer_checkpoints_on_sigterm_and_resumes(phantom_set: Path, tmp_path: Path) -> None:
    """Issue 14, case 12: a trainer killed by SIGTERM (Slurm, docker stop) saves `last` before exiting 143."""
    import signal
    import subprocess
    import time

    from retina.common.checkpoint import Checkpoint

    run = tmp_path / "aae"
    process = subprocess.Popen(
        _cli("layout", "train-aae", "--data", str(phantom_set), "--out", str(run), "--res", "32", "--kimg", "1000",
             "--batch", "2", "--width", "8", "--latent", "8", "--device", "cpu", "--quiet"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        _wait_for_rows(run / "log.jsonl", 0, process)  # log_every 10 steps: training is under way
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill() if process.poll() is None else None
    assert process.returncode == 143 and err.strip().splitlines() == ["error: terminated (SIGTERM)"], err
    last = Checkpoint(run / "last.safetensors")
    seen = int(last.state["images_seen"])
    assert seen >= 20, "no checkpoint of the steps done before SIGTERM"
    assert not (run / ".lock").exists()
    main(["layout", "train-aae", "--resume", str(run), "--kimg", str((seen + 4) / 1000), "--device", "cpu", "--quiet"])
    assert int(Checkpoint(run / "last.safetensors").state["images_seen"]) == seen + 4


def _killed_generate(out: Path, monkeypatch, after: int = 2) -> None:
    """A `generate --n 4` killed (as by SIGKILL) after ``after`` samples: OUT.partial stays, with a 0-byte
    temporary file of the sample it was writing."""
    from retina.common.canonical import CanonicalWriter

    original_add, original_abort = CanonicalWriter.add, CanonicalWriter._abort

    def add(self, name, **kwargs):
        if len(self.done) == after:
            (self.partial / "images" / f".{name}.png.x1y2.partial").write_bytes(b"")
            raise RuntimeError("killed")
        return original_add(self, name, **kwargs)

    def abort_like_sigkill(self):  # nothing is cleaned up after SIGKILL
        self.keep_partial = True
        original_abort(self)

    monkeypatch.setattr(CanonicalWriter, "add", add)
    monkeypatch.setattr(CanonicalWriter, "_abort", abort_like_sigkill)
    with pytest.raises(RuntimeError):
        main(["generate", "--n", "4", "--res", "32", "--batch", "1", "--out", str(out), "--device", "cpu"])
    monkeypatch.setattr(CanonicalWriter, "add", original_add)
    monkeypatch.setattr(CanonicalWriter, "_abort", original_abort)
    assert out.with_name(out.name + ".partial").is_dir()


@pytest.mark.parametrize("changed", [("--res", "64"), ("--seed", "3"), ("--grades", "4"), ("--n", "6")])
def test_generate_resume_refuses_changed_options(changed: tuple[str, str], tmp_path: Path, capsys,
                                                 monkeypatch) -> None:
    """Issue 14, case 3: --resume with another --res/--seed/--grades/--n is refused, naming the option, and the
    interrupted run's partial folder is kept for a proper resume."""
    out = tmp_path / "gm"
    _killed_generate(out, monkeypatch)
    argv = {"--n": "4", "--res": "32", "--batch": "1", "--out": str(out), "--device": "cpu"}
    argv[changed[0]] = changed[1]
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["generate", *[x for pair in argv.items() for x in pair], "--resume"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert f"{changed[0]} (was" in lines[0] and "give the same options again" in lines[0], lines[0]
    assert not out.exists() and (tmp_path / "gm.partial" / "labels.csv").is_file()


def test_generate_resume_finishes_without_leftovers(tmp_path: Path, monkeypatch) -> None:
    """Issue 14, case 14: the resumed set is complete, equal to an uninterrupted run, and holds no
    `.gen_*.partial` file."""
    from retina.common.canonical import CanonicalDataset

    out, reference = tmp_path / "gm", tmp_path / "ref"
    _killed_generate(out, monkeypatch)
    main(["generate", "--n", "4", "--res", "32", "--batch", "1", "--out", str(out), "--device", "cpu", "--resume"])
    main(["generate", "--n", "4", "--res", "32", "--batch", "3", "--out", str(reference), "--device", "cpu"])
    assert not list(out.rglob("*.partial")) and not (out / ".options.json").exists() and not (out / ".lock").exists()
    resumed, whole = CanonicalDataset(out), CanonicalDataset(reference)
    assert resumed.names == whole.names and len(resumed) == 4
    for name in whole.names:
        assert np.array_equal(resumed.load_image(name), whole.load_image(name))


def test_written_files_honour_the_umask(tmp_path: Path) -> None:
    """Issue 14, case 15: files are 0666 less the umask (0644 under the usual 022), not mkstemp's 0600."""
    from retina.common.imageio import FILE_MODE

    old = os.umask(0o022)
    os.umask(old)
    assert FILE_MODE == 0o666 & ~old
    main(["data", "phantom", "--n", "2", "--res", "32", "--out", str(tmp_path / "ph")])
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "ph").rglob("*") if p.is_file()}
    assert modes == {0o666 & ~old}, {oct(m) for m in modes}


def test_second_writer_refused_while_a_lock_is_held(phantom_set: Path, tmp_path: Path, capsys) -> None:
    """A lock held by another open file (another process, to the kernel) refuses the run and leaves the
    holder's partial folder as it was."""
    import fcntl

    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "work.txt").write_text("theirs")
    with open(partial / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("4242\n")
        handle.flush()
        with pytest.raises(SystemExit) as refused:
            main(["data", "merge", str(phantom_set), str(renamed(Path(shutil.copytree(phantom_set, tmp_path / "b")))),
                  "--out", str(tmp_path / "out")])
    assert refused.value.code == 2
    assert "another retina run (pid 4242)" in capsys.readouterr().err
    assert (partial / "work.txt").read_text() == "theirs" and not (tmp_path / "out").exists()
