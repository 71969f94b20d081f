"""Reading and writing images and masks safely.

Every reader turns the ways a file can be bad (missing, empty, truncated, not an image, too large, odd bit
depth or palette) into a one-line :class:`RetinaError`; every writer writes to a temporary name first and
renames, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from retina.common.errors import RetinaError
from retina.common.output import check_output

# Refuse decompression bombs: the largest fundus cameras produce ~24 MP; leave head-room, not 2^31.
MAX_IMAGE_PIXELS = int(os.environ.get("RETINA_MAX_IMAGE_PIXELS", 64_000_000))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")

ImageFile.LOAD_TRUNCATED_IMAGES = False


def _within_pixel_limit(path: Path, image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened (not yet decoded) image; a RetinaError above MAX_IMAGE_PIXELS."""
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise RetinaError(
            f"{path}: {width}x{height} pixels exceeds the limit of {MAX_IMAGE_PIXELS} "
            "(raise RETINA_MAX_IMAGE_PIXELS if the file is genuine)"
        )
    return width, height


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise RetinaError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise RetinaError(f"{path}: file is empty (0 bytes); re-copy or delete it")
    Image.MAX_IMAGE_PIXELS = None  # checked below against our own limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(path)
            _within_pixel_limit(path, image)
            image.load()
    except RetinaError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise RetinaError(f"{path}: unreadable or truncated image ({error}); re-export or remove it") from None
    return image


def verify_image(path: str | Path) -> tuple[int, int]:
    """Check that a file is a complete image within the pixel limit without decoding its pixels (cheap enough
    for every file of a large set: PNG chunk checksums are verified); returns ``(width, height)``."""
    path = Path(path)
    if not path.is_file():
        raise RetinaError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise RetinaError(f"{path}: file is empty (0 bytes); re-copy or delete it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                width, height = _within_pixel_limit(path, image)
                image.verify()
    except RetinaError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise RetinaError(f"{path}: unreadable or truncated image ({error}); re-export or remove it") from None
    return width, height


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    array = array.astype(np.float64)
    top = array.max() if array.size else 0
    scale = 255.0 / 65535.0 if top > 255 else 1.0
    return np.clip(array * scale, 0, 255).round().astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read a colour photograph as ``uint8`` RGB ``(H, W, 3)``; 16-bit, grey and palette files are converted."""
    image = _open(Path(path))
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = _to_uint8(np.asarray(image))
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _mask_plane(image: Image.Image) -> np.ndarray:
    """One grey plane from a mask image, decided by its mode.

    Colour masks count any colour channel (IDRiD draws lesions in red). An alpha channel is *coverage* only in
    a file whose colour is empty everywhere and whose alpha varies (GIMP/Photoshop "paint on a transparent
    layer": black RGB, lesion in alpha). A uniform alpha (an opaque export) says nothing: the colour decides,
    and elsewhere alpha only blanks fully transparent pixels. Taking the maximum over all four channels, as
    this reader once did, read an opaque black mask as 100 % lesion.
    """
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        array = np.asarray(image)
        colour, alpha = array[..., :-1].max(axis=2), array[..., -1]
        if alpha.size and colour.max() == 0 and alpha.min() != alpha.max():
            return alpha
        return np.where(alpha > 0, colour, 0).astype(colour.dtype)
    if image.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        image = image.convert("RGB")
    array = np.asarray(image)
    return array.max(axis=2) if array.ndim == 3 else array


def read_mask(path: str | Path, threshold: int | None = None) -> np.ndarray:
    """Read a binary mask as ``bool (H, W)`` (every mask reader in the project, importers included, is this one).

    The plane comes from :func:`_mask_plane` (colour, alpha and bit depth handled by mode). Without
    ``threshold`` a file whose maximum is 1 is read as 0/1 and anything else as foreground at >= 128, which
    keeps lossy JPEG masks binary.
    """
    array = _mask_plane(_open(Path(path)))
    if array.dtype == bool:
        return array.copy()
    if array.dtype != np.uint8:
        array = _to_uint8(array) if array.max(initial=0) > 1 else array.astype(np.uint8)
    if threshold is None:
        threshold = 1 if array.max(initial=0) <= 1 else 128
    return array >= threshold


def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0666 less the umask (mkstemp alone gives 0600)."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()  # once, at import: os.umask is process-wide and not thread-safe to probe


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error delete it."""
    path = check_output(path, option="", folder=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as error:
        raise RetinaError(f"{path}: cannot write here ({error.strerror or error}); choose a writable place") from None
    os.fchmod(handle, FILE_MODE)  # colleagues and containers running as another user can read the set
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_png(path: str | Path, array: np.ndarray, text: Mapping[str, str] | None = None) -> None:
    """Write ``uint8`` RGB ``(H, W, 3)`` or a grey/binary ``(H, W)`` array as PNG, atomically.

    ``text``: PNG tEXt chunks (e.g. ``Synthetic: true``), which image viewers and ``PIL.Image.info`` show.
    """
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise TypeError(f"write_png expects uint8 or bool, got {array.dtype}")
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, str(value))
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG", pnginfo=info)


def list_images(folder: str | Path) -> list[Path]:
    """Image files in a folder (not recursive), sorted by name; hidden and partial files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RetinaError(f"{folder}: folder not found")
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
