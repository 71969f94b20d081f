"""The canonical on-disk data set format that every command reads and writes.

::

    DIR/
      images/NAME.png              colour photograph (absent for layout-only sets)
      masks/<channel>/NAME.png     binary 0/255, one folder per channel in retina.common.schema
      labels.csv                   name,grade,split,source[,extra columns...]  (split: train|val|test; an empty
                                   cell or no split column means train)
      retina.json                  channels present, resolution, provenance (sets written by earlier versions have it as
                                   dataset.json, which is still read; nnU-Net's dataset.json is another schema,
                                   written by `retina data export --format nnunet`)

A channel folder may be missing (grades-only sets, layout sets without vessels): readers report which
channels are absent and callers that need them fail with a message, rather than reading zeros.
Writers build the set in ``DIR.partial/`` and rename it to ``DIR`` only when complete.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retina import __version__
from retina.common.errors import RetinaError, parse_grade
from retina.common.imageio import read_image, read_mask, verify_image, write_png, write_text_atomic
from retina.common.metadata import (
    check_count_cells,
    dataset_disagreements,
    read_json,
    validate_dataset_info,
)
from retina.common.output import LOCK_NAME, OutputLock, check_output, make_folder, remove_created
from retina.common.provenance import environment
from retina.common.schema import CHANNEL_NAMES

FORMAT_NAME = "retina-canonical"
FORMAT_VERSION = 1
LABEL_COLUMNS = ("name", "grade", "split", "source")
INFO_FILE = "retina.json"
LEGACY_INFO_FILE = "dataset.json"  # its name in sets written by earlier versions: read, never written
SPLITS = ("train", "val", "test")


def info_file(root: str | Path) -> Path:
    """A set's metadata file: ``retina.json``, or the legacy ``dataset.json`` of a set that has only that."""
    root = Path(root)
    current, legacy = root / INFO_FILE, root / LEGACY_INFO_FILE
    return legacy if legacy.is_file() and not current.is_file() else current


@dataclass
class Sample:
    name: str
    grade: int | None  # None: unknown (e.g. segmentation-only sets without grades)
    split: str = "train"
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _read_labels(path: Path) -> list[Sample]:
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts the file with a byte-order mark, which is not part of "name"
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            # split may be absent (a hand-made set): every row is then a training row (retina.common.split)
            missing = [c for c in LABEL_COLUMNS if c not in columns and c != "split"]
            if missing:
                raise RetinaError(
                    f"{path}: missing column(s) {', '.join(missing)}; the header must start with "
                    f"{','.join(LABEL_COLUMNS)}"
                )
            samples = []
            for line, row in enumerate(reader, start=2):
                name = (row.get("name") or "").strip()
                if not name:
                    raise RetinaError(f"{path}:{line}: empty name; every row needs the image's file stem")
                if "/" in name or "\\" in name or name.startswith("."):
                    # a name is a file stem inside images/ and masks/*/: never a path that leads elsewhere
                    raise RetinaError(f"{path}:{line}: name '{name}' is not a plain file stem; remove / \\ "
                                      "and leading dots")
                raw_grade = (row.get("grade") or "").strip()
                grade = None if raw_grade == "" else parse_grade(raw_grade, f"{path}:{line}")
                extra = {k: v for k, v in row.items() if k not in LABEL_COLUMNS and k is not None}
                split = (row.get("split") or "").strip() or "train"  # an empty cell: a training row
                if split not in SPLITS:
                    raise RetinaError(f"{path}:{line}: split '{split}' is not one of {', '.join(SPLITS)}; "
                                      "fix the split column (an empty cell means train)")
                check_count_cells(extra, f"{path}:{line}")
                samples.append(Sample(name, grade, split, (row.get("source") or "").strip(), extra))
    except UnicodeDecodeError:
        raise RetinaError(f"{path}: not UTF-8 text; save labels.csv as UTF-8") from None
    except csv.Error as error:
        raise RetinaError(f"{path}: malformed CSV ({error})") from None
    names = Counter(s.name for s in samples)
    duplicated = [n for n, count in names.items() if count > 1]
    if duplicated:
        raise RetinaError(f"{path}: duplicate name(s) {', '.join(duplicated[:5])}; names must be unique")
    return samples


class CanonicalDataset:
    """An index over a canonical-format folder. Cheap to open: files are read on demand."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise RetinaError(f"{self.root}: data set folder not found")
        labels = self.root / "labels.csv"
        if not labels.is_file():
            raise RetinaError(
                f"{self.root}: no labels.csv; not a canonical data set (make one with `retina data import` "
                "or `retina data phantom`)"
            )
        self.samples: list[Sample] = _read_labels(labels)
        if not self.samples:
            raise RetinaError(f"{labels}: the data set is empty (no rows)")
        info_path = self.info_path = info_file(self.root)
        self.info: dict[str, Any] = validate_dataset_info(read_json(info_path), info_path) if info_path.is_file() \
            else {}
        masks = self.root / "masks"
        self.channels: tuple[str, ...] = tuple(
            c for c in CHANNEL_NAMES if (masks / c).is_dir()
        )
        self.has_images = (self.root / "images").is_dir()
        self._by_name = {s.name: s for s in self.samples}
        # Readers go by the files (a deleted channel folder is reported where it is needed); where retina.json
        # contradicts them, `retina data inspect` lists it, and a value that is used (resolution) is checked.
        self.disagreements = dataset_disagreements(self.info, len(self.samples), self.channels, self.has_images)
        self._resolution_checked = False

    # -- index ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    @property
    def missing_channels(self) -> tuple[str, ...]:
        return tuple(c for c in CHANNEL_NAMES if c not in self.channels)

    @property
    def resolution(self) -> int | None:
        """retina.json's resolution (validated: an int or None), checked once against the first sample's
        files, so that a set whose metadata lies about its size is refused rather than merged or rendered."""
        value = self.info.get("resolution")
        if value is not None and not self._resolution_checked:
            self._resolution_checked = True
            for sample in self.samples[:3]:  # the first readable file decides; broken ones are reported elsewhere
                files = [self.image_path(sample.name)] if self.has_images else []
                files += [self.mask_path(c, sample.name) for c in self.channels]
                try:
                    width, height = next(verify_image(p) for p in files if p.is_file())
                except (StopIteration, RetinaError):
                    continue
                if (width, height) != (value, value):
                    raise RetinaError(f"{self.info_path}: says resolution {value} but the files of "
                                      f"'{sample.name}' are {width}x{height}; correct \"resolution\" or delete "
                                      f"{self.info_path.name}")
                break
        return value

    def sample(self, name: str) -> Sample:
        if name not in self._by_name:
            raise RetinaError(f"{self.root}: no sample named '{name}' in labels.csv")
        return self._by_name[name]

    def subset(self, split: str) -> list[Sample]:
        return [s for s in self.samples if s.split == split]

    def require_channels(self, channels: Iterable[str], purpose: str) -> None:
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise RetinaError(
                f"{self.root}: masks/{'|'.join(missing)} missing, needed for {purpose}; "
                "use a data set with those masks or leave the channels out"
            )

    def require_images(self, purpose: str) -> None:
        if not self.has_images:
            raise RetinaError(f"{self.root}: no images/ folder (a masks-only set), needed for {purpose}")

    def require_grades(self, purpose: str) -> None:
        unknown = [s.name for s in self.samples if s.grade is None]
        if unknown:
            raise RetinaError(
                f"{self.root}/labels.csv: {len(unknown)} sample(s) without a grade (e.g. {unknown[0]}), "
                f"needed for {purpose}; fill in the grade column"
            )

    def require_matching_sizes(self, names: Iterable[str], channels: Iterable[str]) -> None:
        """Every mask of ``channels`` has its photograph's size, or a one-line error naming the file: a 32 px mask
        stretched over a 64 px photograph would train a model on misaligned lesions. Decodes no pixels."""
        channels = tuple(channels)
        for name in names:
            size = verify_image(self.image_path(name))
            for channel in channels:
                path = self.mask_path(channel, name)
                mask = verify_image(path)
                if mask != size:
                    raise RetinaError(
                        f"{path}: {mask[0]}x{mask[1]} mask for the {size[0]}x{size[1]} photograph "
                        f"{self.image_path(name)}; masks must have their image's size (re-import the set)"
                    )

    # -- files ----------------------------------------------------------------------------------
    def image_path(self, name: str) -> Path:
        return self.root / "images" / f"{name}.png"

    def mask_path(self, channel: str, name: str) -> Path:
        return self.root / "masks" / channel / f"{name}.png"

    def load_image(self, name: str) -> np.ndarray:
        """``uint8 (H, W, 3)``."""
        self.require_images("reading photographs")
        return read_image(self.image_path(name))

    def load_masks(self, name: str, channels: Iterable[str] | None = None) -> np.ndarray:
        """``bool (C, H, W)`` for ``channels`` (default: all channels present), in that order."""
        channels = tuple(self.channels if channels is None else channels)
        self.require_channels(channels, f"reading masks of '{name}'")
        planes = [read_mask(self.mask_path(c, name)) for c in channels]
        shapes = {p.shape for p in planes}
        if len(shapes) > 1:
            raise RetinaError(f"{self.root}/masks/*/{name}.png: mask sizes differ {sorted(shapes)}; re-import")
        if not planes:
            raise RetinaError(f"{self.root}: no mask channels present")
        return np.stack(planes)


class CanonicalWriter:
    """Writes a canonical data set into ``OUT.partial/`` and renames it to ``OUT`` on :meth:`close`.

    Use as a context manager: an exception (Ctrl-C and SIGTERM included) removes the partial folder (nothing
    half-written is left), unless ``keep_partial`` is set so that a long job can resume (``resume=True`` picks
    it up again). ``OUT.partial/.lock`` keeps a second run off the same output while this one writes. A resumed
    job passes the ``options`` that decide its content: they are kept in ``OUT.partial/.options.json`` and a
    resume with other values is refused, naming them. Rows are appended to labels.csv as they come, so memory
    stays flat for any number of samples.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        resolution: int | None = None,
        provenance: Mapping[str, Any] | None = None,
        extra_columns: Iterable[str] = (),
        overwrite: bool = False,
        resume: bool = False,
        keep_partial: bool = False,
        options: Mapping[str, Any] | None = None,
    ):
        self.out = check_output(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.resolution = resolution
        self.provenance = dict(provenance or {})
        self.extra_columns = list(extra_columns)
        self.keep_partial = keep_partial
        if self.out.exists() and not overwrite:
            raise RetinaError(f"{self.out}: already exists; choose another --out or pass --overwrite")
        check_output(self.partial)
        self._created = make_folder(self.partial, shown=self.out)
        try:
            self._lock = OutputLock(self.partial, self.out)
        except RetinaError:
            remove_created(self._created)
            raise
        try:
            self._prepare(resume, options)
        except BaseException:
            if resume:  # a refused resume keeps the interrupted run's work for a resume with the right options
                self.keep_partial = True
            self._abort()
            raise
        self._overwrite = overwrite

    def _prepare(self, resume: bool, options: Mapping[str, Any] | None) -> None:
        """Empty the partial folder for a new run, or check and tidy it for a resumed one."""
        options_path = self.partial / ".options.json"
        if not resume:
            for entry in self.partial.iterdir():
                if entry.name != LOCK_NAME:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        else:
            # Files a killed run was writing (``.NAME.partial`` from atomic_path) are never part of the set.
            for leftover in self.partial.rglob(".*.partial"):
                leftover.unlink(missing_ok=True)
            if options is not None and options_path.is_file():
                saved = json.loads(options_path.read_text("utf-8"))
                changed = [k for k in sorted(set(saved) | set(options)) if saved.get(k) != _jsonable(options.get(k))]
                if changed:
                    listed = ", ".join(f"{k} (was {saved.get(k)!r}, now {_jsonable(options.get(k))!r})"
                                       for k in changed)
                    raise RetinaError(f"{self.partial}: --resume with other options than the interrupted run: "
                                      f"{listed}; give the same options again, or drop --resume to start over")
        if options is not None and not options_path.is_file():
            write_text_atomic(options_path, json.dumps(_jsonable(dict(options)), indent=2) + "\n")
        self._labels_path = self.partial / "labels.csv"
        self.done: set[str] = set()
        self._grades: Counter = Counter()
        self._channels: set[str] = set()
        if self._labels_path.exists():
            for sample in _read_labels(self._labels_path):
                self.done.add(sample.name)
                self._grades[sample.grade] += 1
            self._channels = {p.name for p in (self.partial / "masks").glob("*") if p.is_dir()}
            self._handle = open(self._labels_path, "a", newline="", encoding="utf-8")
            self._csv = csv.writer(self._handle)
        else:
            self._handle = open(self._labels_path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._handle)
            self._csv.writerow([*LABEL_COLUMNS, *self.extra_columns])
            self._handle.flush()

    def _abort(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()
        if not self.keep_partial:
            shutil.rmtree(self.partial, ignore_errors=True)
            remove_created(self._created)
        self._lock.release()

    def __enter__(self) -> CanonicalWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            try:
                self.close()
            except BaseException:
                self._abort()
                raise
        else:
            self._abort()

    def add(
        self,
        name: str,
        *,
        image: np.ndarray | None = None,
        masks: Mapping[str, np.ndarray] | None = None,
        grade: int | None = None,
        split: str = "train",
        source: str = "",
        png_text: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        """Add one sample. ``image``: uint8 (H, W, 3); ``masks``: channel name -> bool/uint8 (H, W).

        ``png_text``: text chunks for the photograph (synthetic images say so: ``retina.common.provenance``).
        """
        if name in self.done:
            raise RetinaError(f"{self.out}: duplicate sample name '{name}'")
        if image is not None:
            write_png(self.partial / "images" / f"{name}.png", image, text=png_text)
        for channel, plane in (masks or {}).items():
            if channel not in CHANNEL_NAMES:
                raise RetinaError(f"unknown mask channel '{channel}'")
            write_png(self.partial / "masks" / channel / f"{name}.png", np.asarray(plane) > 0)
            self._channels.add(channel)
        # The row goes last: a sample is in the set only once all its files are.
        cells = [name, "" if grade is None else int(grade), split, source]
        cells += [extra.get(column, "") for column in self.extra_columns]
        self._csv.writerow(cells)
        self._handle.flush()
        self.done.add(name)
        self._grades[grade] += 1

    def add_files(
        self,
        name: str,
        *,
        image: Path | None = None,
        masks: Mapping[str, Path] | None = None,
        grade: int | None = None,
        split: str = "train",
        source: str = "",
        **extra: Any,
    ) -> None:
        """Like :meth:`add` but copies PNG files that are already canonical (merging sets), without re-encoding."""
        if name in self.done:
            raise RetinaError(f"{self.out}: duplicate sample name '{name}'")
        targets = [(image, self.partial / "images" / f"{name}.png")] if image is not None else []
        for channel, path in (masks or {}).items():
            if channel not in CHANNEL_NAMES:
                raise RetinaError(f"unknown mask channel '{channel}'")
            targets.append((path, self.partial / "masks" / channel / f"{name}.png"))
            self._channels.add(channel)
        for path, target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        self.add(name, grade=grade, split=split, source=source, **extra)

    def close(self) -> Path:
        self._handle.close()
        info = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "retina_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "count": len(self.done),
            "resolution": self.resolution,
            "channels": [c for c in CHANNEL_NAMES if c in self._channels],
            "has_images": (self.partial / "images").is_dir(),
            "grades": {str(k if k is not None else "unknown"): v for k, v in sorted(
                self._grades.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))},
            "provenance": self.provenance,
            "environment": environment(),
        }
        write_text_atomic(self.partial / INFO_FILE, json.dumps(info, indent=2) + "\n")
        (self.partial / ".options.json").unlink(missing_ok=True)
        if self.out.exists() and self._overwrite:
            shutil.rmtree(self.out)
        try:
            self.partial.rename(self.out)
        except OSError as error:
            raise RetinaError(f"{self.out}: could not move the finished set into place ({error.strerror}); it "
                              "appeared while this run wrote; choose another --out") from None
        self._lock.moved(self.out)
        self._lock.release()  # after the rename: a run arriving meanwhile finds OUT.partial locked, not empty
        return self.out


def _jsonable(value: Any) -> Any:
    """Options as they read back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def masks_to_dict(stack: np.ndarray, channels: Iterable[str] = CHANNEL_NAMES) -> dict[str, np.ndarray]:
    """``(C, H, W)`` array -> {channel: (H, W) bool}, thresholding at 0.5 for float stacks."""
    stack = np.asarray(stack)
    binary = stack > 0.5 if stack.dtype.kind == "f" else stack > 0
    return {c: binary[i] for i, c in enumerate(channels)}
