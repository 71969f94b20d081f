"""The image half of the procedural phantom: paint a fundus-like photograph from any mask stack.

Works on the phantom's own masks, on generated layouts and on real annotations alike: the optic disc position
comes from the ``od`` channel, the field of view from ``fov`` (the full frame when it is empty), and every
lesion is drawn where its mask says, in its typical colour. No learning involved: this is the baseline
renderer and the source of our test photographs.
"""

from __future__ import annotations

import cv2
import numpy as np

from retina.common.errors import RetinaError
from retina.common.schema import CHANNEL_INDEX, NUM_CHANNELS

# Typical colours (RGB, 0-1) of fundus structures under a white-light fundus camera.
BACKGROUND = np.array([0.80, 0.36, 0.16])
CHOROID = np.array([0.62, 0.22, 0.10])
MACULA = np.array([0.45, 0.18, 0.08])
DISC = np.array([0.99, 0.86, 0.62])
CUP = np.array([1.00, 0.96, 0.84])
VESSEL = np.array([0.50, 0.08, 0.05])
LESION_COLOURS: dict[str, np.ndarray] = {
    "ma": np.array([0.45, 0.04, 0.03]),
    "he": np.array([0.50, 0.05, 0.03]),
    "ex": np.array([0.96, 0.86, 0.38]),
    "se": np.array([0.93, 0.88, 0.78]),
    "nv": np.array([0.62, 0.10, 0.07]),
    "fp": np.array([0.84, 0.82, 0.78]),
}
LASER_RIM = np.array([0.22, 0.13, 0.08])
LASER_CENTRE = np.array([0.85, 0.72, 0.48])


def _blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return plane
    return cv2.GaussianBlur(plane, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth random field with zero mean and unit spread."""
    field = _blur(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / max(1e-6, float(field.std()))


def _paint(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-blend ``colour`` (RGB or a per-pixel RGB map) into ``image`` in place, within alpha's bounding box."""
    visible = alpha > 1e-3
    rows, columns = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if rows.size == 0:
        return
    box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    weight = np.clip(alpha[box], 0, 1)[..., None]
    region = image[box]
    region *= 1 - weight
    region += weight * (colour[box] if colour.ndim == 3 else colour)


def _centroid(plane: np.ndarray) -> tuple[float, float] | None:
    ys, xs = np.nonzero(plane)
    if xs.size == 0:
        return None
    return float(xs.mean()), float(ys.mean())


def render_fundus(masks: np.ndarray, grade: int, seed: int) -> np.ndarray:
    """``masks`` bool ``(C, H, W)`` in CHANNEL_NAMES order -> ``uint8 (H, W, 3)`` photograph; deterministic."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] != NUM_CHANNELS:
        raise RetinaError(
            f"render_fundus needs a ({NUM_CHANNELS}, H, W) mask stack in schema order, got shape {masks.shape}"
        )
    masks = masks > 0.5 if masks.dtype.kind == "f" else masks > 0
    _, height, width = masks.shape
    size = float(min(height, width))
    rng = np.random.default_rng(seed)
    plane = {name: masks[index].astype(np.float32) for name, index in CHANNEL_INDEX.items()}

    fov = plane["fov"] if masks[CHANNEL_INDEX["fov"]].any() else np.ones((height, width), np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    fov_centre = _centroid(fov > 0) or ((width - 1) / 2, (height - 1) / 2)
    fov_radius = max(1.0, float(np.sqrt(fov.sum() / np.pi)))
    od_centre = _centroid(masks[CHANNEL_INDEX["od"]])
    od_radius = float(np.sqrt(masks[CHANNEL_INDEX["od"]].sum() / np.pi)) if od_centre else 0.06 * size
    if od_centre is None:  # no disc annotated: assume a right eye, disc on the right
        od_centre = (fov_centre[0] + 0.27 * size, fov_centre[1])
    # The fovea lies ~2.5 disc diameters temporal to the disc, a little below it.
    direction = np.sign(od_centre[0] - fov_centre[0]) or 1.0
    fovea = (od_centre[0] - direction * 0.27 * size, od_centre[1] + 0.02 * size)

    # Background: orange-red with a mottled choroidal texture and a vignette that darkens the rim.
    tone = BACKGROUND * rng.uniform(0.85, 1.1, 3)
    texture = 0.6 * _noise(rng, (height, width), size / 40) + 0.4 * _noise(rng, (height, width), size / 120)
    image = np.empty((height, width, 3), np.float32)
    image[:] = tone
    choroid = np.clip(0.5 + 0.18 * texture, 0, 1)
    _paint(image, choroid * 0.6, CHOROID)
    radial = np.hypot(xs - fov_centre[0], ys - fov_centre[1]) / fov_radius
    image *= np.clip(1.0 - 0.55 * radial**2.5, 0.25, 1.0)[..., None]

    # Macula: a darker, browner zone with a darker foveal pit.
    foveal = np.hypot(xs - fovea[0], ys - fovea[1]) / size
    _paint(image, 0.55 * np.exp(-((foveal / 0.09) ** 2)), MACULA)
    _paint(image, 0.35 * np.exp(-((foveal / 0.02) ** 2)), MACULA * 0.7)

    # Optic disc: bright, soft-edged, with a glow around it and a paler cup.
    disc_distance = np.hypot(xs - od_centre[0], ys - od_centre[1]) / max(od_radius, 1.0)
    _paint(image, 0.35 * np.exp(-((disc_distance / 1.6) ** 2)), DISC * 0.9)
    _paint(image, 0.9 * _blur(plane["od"], max(0.5, size / 200)), DISC)
    cup = 0.8 * np.exp(-((disc_distance / 0.45) ** 2)) * (plane["od"] > 0)
    _paint(image, cup, CUP)

    # Vessels: dark red, slightly soft; darker where they are wide (veins read darker than arteries).
    vessels = _blur(plane["vessels"], 0.5)
    thickness = _blur(plane["vessels"], max(1.0, size / 150))
    _paint(image, 0.85 * vessels, VESSEL * (1.0 - 0.35 * np.clip(thickness, 0, 1))[..., None])

    # Lesions, in the order they lie in the retina (deep to superficial).
    if masks[CHANNEL_INDEX["laser"]].any():
        laser = plane["laser"]
        # A scar: clumped dark pigment at the rim around a pale atrophic centre.
        centre = cv2.erode(laser, np.ones((3, 3), np.uint8), iterations=max(1, round(size * 0.005)))
        # Its own generator: drawing from the main one only when laser marks exist would reshuffle every later
        # random field (cotton-wool fluff, sensor noise), so removing the marks would change the whole picture.
        pigment_rng = np.random.default_rng([seed, 1])
        pigment = np.clip(0.8 + 0.3 * _noise(pigment_rng, (height, width), 0.8), 0.3, 1)
        _paint(image, 0.9 * _blur(laser, 0.6) * pigment, LASER_RIM)
        _paint(image, 0.65 * _blur(centre, 0.8), LASER_CENTRE)
    _paint(image, 0.9 * _blur(plane["ma"], 0.5), LESION_COLOURS["ma"])
    _paint(image, 0.85 * _blur(plane["he"], max(0.7, size / 400)), LESION_COLOURS["he"])
    _paint(image, 0.9 * _blur(plane["ex"], 0.4), LESION_COLOURS["ex"])
    # Cotton-wool spots are fluffy: feathered edges, modulated by fine noise.
    fluff = np.clip(0.75 + 0.25 * _noise(rng, (height, width), 1.0), 0, 1)
    _paint(image, 0.8 * _blur(plane["se"], max(1.0, size / 150)) * fluff, LESION_COLOURS["se"])
    _paint(image, 0.75 * _blur(plane["nv"], 0.4), LESION_COLOURS["nv"])
    _paint(image, 0.6 * _blur(plane["fp"], max(1.0, size / 120)), LESION_COLOURS["fp"])

    # Camera: a little blur and sensor noise; black outside the field of view with a soft rim.
    image = _blur(image, max(0.3, size / 512))
    image += rng.normal(0, 0.012, image.shape).astype(np.float32)
    image *= _blur(fov, 0.7)[..., None]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
