"""Lesion manipulation on a layout: add, remove, scale and move lesions, paint with a brush, check the grade.

A :class:`Layout` is a mask stack plus its stated grade. Every edit returns a new layout and leaves the input as it
was. Added lesions are drawn by the procedural prior's own drawing code (:mod:`retina.phantom.layout`), placed by
its rules (microaneurysms and haemorrhages around the macula, cotton-wool spots along the vessels, new vessels on
or near the disc, laser scars in the periphery), so an added haemorrhage looks like a sampled one. Nothing is
drawn outside the field of view. DR-GAN (Zhou et al. 2020, Fig. 5) shows this kind of manipulation; re-rendering
an edited layout with the same seed changes the photograph only around the edit (the procedural renderer draws
its random fields independently of the lesions).

>>> from retina.edit import sample, remove_lesions, add_lesions, grade_check
>>> layout = sample(grade=3, size=128, seed=0)
>>> edited = add_lesions(remove_lesions(layout, "he"), "ma", 20, seed=1)
>>> grade_check(edited, 3).consistent
False
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from retina.common.errors import RetinaError, parse_grade
from retina.common.grade_rule import (
    MODERATE_CHANNELS,
    PROLIFERATIVE_CHANNELS,
    SEVERE_HAEMORRHAGES_PER_QUADRANT,
    grade_from_masks,
    haemorrhages_per_quadrant,
)
from retina.common.schema import CHANNEL_INDEX, CHANNEL_NAMES, CHANNELS, GRADE_NAMES, LESION_CHANNELS, NUM_CHANNELS
from retina.phantom.layout import PhantomLayoutConfig, _Builder, sample_layout

# A region: a boolean mask of the layout's size, or a pixel box (x0, y0, x1, y1), end exclusive.
Region = np.ndarray | tuple[int, int, int, int]
LONG_NAMES = {c.name: c.long_name for c in CHANNELS}


@dataclass(frozen=True)
class Layout:
    """``masks``: bool (NUM_CHANNELS, H, W) in ``CHANNEL_NAMES`` order; ``grade``: the stated ICDR grade."""

    masks: np.ndarray
    grade: int | None = None

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks)
        if masks.ndim != 3 or masks.shape[0] != NUM_CHANNELS:
            raise RetinaError(f"a layout needs a ({NUM_CHANNELS}, H, W) mask stack in the order "
                              f"{', '.join(CHANNEL_NAMES)}; got shape {masks.shape}")
        object.__setattr__(self, "masks", masks > 0.5 if masks.dtype.kind == "f" else masks > 0)
        if self.grade is not None:
            object.__setattr__(self, "grade", parse_grade(self.grade, "layout grade"))

    @property
    def size(self) -> tuple[int, int]:
        return self.masks.shape[1], self.masks.shape[2]

    def channel(self, name: str) -> np.ndarray:
        return self.masks[_channel(name, lesions_only=False)]

    def with_channel(self, name: str, plane: np.ndarray) -> Layout:
        """A copy with one channel replaced (clipped to the field of view, where there is one)."""
        masks = self.masks.copy()
        fov = masks[CHANNEL_INDEX["fov"]]
        plane = np.asarray(plane, dtype=bool)
        masks[_channel(name, lesions_only=False)] = plane & fov if fov.any() and name != "fov" else plane
        return replace(self, masks=masks)


@dataclass(frozen=True)
class GradeCheck:
    """What the lesion-to-grade rule (:mod:`retina.common.grade_rule`) says about a layout and its stated grade."""

    stated: int | None
    estimated: int
    problems: tuple[str, ...] = field(default=())

    @property
    def consistent(self) -> bool:
        return self.stated is None or self.stated == self.estimated

    def summary(self) -> str:
        said = f"grade {self.estimated} ({GRADE_NAMES[self.estimated]}) by the lesion rule"
        if self.stated is None:
            return said
        if self.consistent:
            return f"stated grade {self.stated} agrees: {said}"
        return f"stated grade {self.stated} disagrees: {said}; " + "; ".join(self.problems)


def _channel(name: str, lesions_only: bool = True) -> int:
    if name not in CHANNEL_INDEX:
        raise RetinaError(f"unknown mask channel '{name}'; channels are {', '.join(CHANNEL_NAMES)}")
    if lesions_only and name not in LESION_CHANNELS:
        raise RetinaError(f"'{name}' is anatomy, not a lesion; lesion channels are {', '.join(LESION_CHANNELS)}")
    return CHANNEL_INDEX[name]


def _region_mask(region: Region | None, shape: tuple[int, int]) -> np.ndarray | None:
    if region is None:
        return None
    if isinstance(region, tuple):
        if len(region) != 4:
            raise RetinaError(f"a region box is (x0, y0, x1, y1); got {region}")
        x0, y0, x1, y1 = (int(v) for v in region)
        mask = np.zeros(shape, bool)
        mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
        return mask
    mask = np.asarray(region, dtype=bool)
    if mask.shape != shape:
        raise RetinaError(f"a region mask must be {shape[1]}x{shape[0]} like the layout; got {mask.shape[1]}x"
                          f"{mask.shape[0]}")
    return mask


def sample(grade: int, size: int = 256, seed: int = 0) -> Layout:
    """A procedural-prior layout (the same one ``retina layout sample`` draws for this grade and seed)."""
    drawn = sample_layout(grade, size, seed)
    return Layout(drawn.masks, drawn.grade)


def _builder(layout: Layout, seed: int) -> _Builder:
    """The phantom's drawing code, with its anatomy (field, disc, fovea, vessels) read off ``layout``."""
    height, width = layout.size
    if height != width:
        raise RetinaError(f"layouts are square; got {width}x{height}")
    grade = layout.grade if layout.grade is not None else 0
    builder = _Builder(height, grade, seed, PhantomLayoutConfig())
    builder.planes = {name: layout.masks[i].astype(np.uint8) for i, name in enumerate(CHANNEL_NAMES)}

    def centroid(plane: np.ndarray) -> np.ndarray | None:
        ys, xs = np.nonzero(plane)
        return np.array([xs.mean(), ys.mean()]) if xs.size else None

    fov = layout.channel("fov")
    if fov.any():
        builder.center, builder.fov_r = centroid(fov), float(np.sqrt(fov.sum() / np.pi))
    disc = layout.channel("od")
    if disc.any():
        builder.od, builder.od_r = centroid(disc), max(1.0, float(np.sqrt(disc.sum() / np.pi)))
    builder.nasal = 1.0 if builder.od[0] >= builder.center[0] else -1.0
    # As the renderer assumes: the fovea ~2.5 disc diameters temporal to the disc, a little below it.
    builder.fovea = builder.od + np.array([-builder.nasal * 0.27 * height, 0.02 * height])
    # Stand-in for the arcades: vessel pixels ordered by distance from the disc (nearest first).
    ys, xs = np.nonzero(layout.channel("vessels"))
    if xs.size:
        points = np.stack([xs, ys], 1).astype(float)
        builder.arcades = [points[np.argsort(np.hypot(*(points - builder.od).T))]]
    else:
        theta = np.linspace(0, 2 * np.pi, 64)
        builder.arcades = [builder.od + 3 * builder.od_r * np.stack([np.cos(theta), np.sin(theta)], 1)]
    return builder


def _place(builder: _Builder, channel: str, allowed: np.ndarray | None) -> np.ndarray | None:
    """Where the prior would put one lesion of ``channel`` (inside ``allowed`` when given); None if nowhere."""
    rng = builder.rng
    if allowed is not None:
        ys, xs = np.nonzero(allowed)
        if xs.size == 0:
            return None
        k = int(rng.integers(xs.size))
        return np.array([xs[k], ys[k]], dtype=float)
    arcade = builder.arcades[0]
    if channel == "ma":
        return builder.around_fovea(0.04, 0.3)
    if channel == "he":
        return builder.around_fovea(0.05, 0.34)
    if channel == "ex":
        return builder.around_fovea(0.05, 0.25)
    if channel == "se":  # near the disc and along the vessels (nerve fibre layer infarcts)
        return arcade[int(rng.integers(max(1, len(arcade) // 2)))] + rng.normal(0, 0.03 * builder.size, 2)
    if channel == "nv":  # NVD on or near the disc, else NVE along a vessel
        if rng.random() < 0.5:
            theta = rng.uniform(0, 2 * np.pi)
            return builder.od + rng.uniform(0, 1.5) * builder.od_r * np.array([np.cos(theta), np.sin(theta)])
        return arcade[int(rng.integers(len(arcade) // 4, len(arcade)))]
    if channel == "laser":  # pan-retinal photocoagulation spares the posterior pole
        return builder.around_fovea(0.3, 0.6)
    return arcade[int(rng.integers(len(arcade)))]  # fp: a band from the disc towards a vessel point


def add_lesions(layout: Layout, channel: str, n: int, region: Region | None = None, seed: int = 0) -> Layout:
    """Draw ``n`` more lesions of ``channel`` (``ex``: n clusters; ``nv``: n tangles; ``fp``: n bands).

    ``region`` (a mask or an (x0, y0, x1, y1) box) restricts where they go; without it the prior's placement rules
    apply. The same seed gives the same lesions.
    """
    index = _channel(channel)
    if int(n) < 0:
        raise RetinaError(f"add {channel}: the number of lesions must be 0 or more, got {n}")
    builder = _builder(layout, int(seed))
    fov = layout.channel("fov") if layout.channel("fov").any() else np.ones(layout.size, bool)
    allowed = _region_mask(region, layout.size)
    if allowed is not None:
        allowed = allowed & fov
    laser_radius = builder.radius(0.01, 0.015)
    draw = {
        "ma": builder.microaneurysm, "he": builder.haemorrhage, "ex": builder.exudate_cluster,
        "se": builder.cotton_wool_spot, "nv": builder.nv_tangle,
        "laser": lambda p: cv2.circle(builder.planes["laser"], (int(round(p[0])), int(round(p[1]))),
                                      laser_radius, 1, -1),
        "fp": lambda p: builder.fibrous_band(np.stack([builder.od, p])),
    }[channel]
    for _ in range(int(n)):
        point = _place(builder, channel, allowed)
        if point is None:
            raise RetinaError(f"add {channel}: the region holds no pixel inside the field of view")
        draw(point)
    plane = builder.planes[channel].astype(bool) & fov
    if allowed is not None:  # lesions drawn around a point may spill over the region's edge: keep the new ones in
        plane = layout.masks[index] | (plane & allowed)
    return layout.with_channel(channel, plane)


def _components(plane: np.ndarray) -> tuple[int, np.ndarray]:
    count, labels = cv2.connectedComponents(plane.astype(np.uint8), connectivity=8)
    return count - 1, labels


def remove_lesions(layout: Layout, channel: str, where: Region | None = None) -> Layout:
    """Remove every lesion of ``channel``, or only those (whole connected lesions) that touch ``where``."""
    _channel(channel)
    plane = layout.channel(channel)
    region = _region_mask(where, layout.size)
    if region is None:
        return layout.with_channel(channel, np.zeros_like(plane))
    _, labels = _components(plane)
    touched = np.unique(labels[region & plane])
    return layout.with_channel(channel, plane & ~np.isin(labels, touched[touched > 0]))


def scale_lesions(layout: Layout, channel: str, factor: float) -> Layout:
    """Grow (``factor`` > 1) or shrink each lesion of ``channel`` about its own centre; a lesion never vanishes."""
    _channel(channel)
    factor = float(factor)
    if not np.isfinite(factor) or factor <= 0:
        raise RetinaError(f"scale {channel}: the factor must be a positive number, got {factor}")
    plane = layout.channel(channel)
    count, labels = _components(plane)
    out = np.zeros_like(plane)
    height, width = plane.shape
    for label in range(1, count + 1):
        ys, xs = np.nonzero(labels == label)
        crop = (labels[ys.min():ys.max() + 1, xs.min():xs.max() + 1] == label).astype(np.uint8)
        new_h, new_w = max(1, round(crop.shape[0] * factor)), max(1, round(crop.shape[1] * factor))
        # Linear resampling of the shape, thresholded: smooth outlines instead of nearest-neighbour blocks.
        scaled = cv2.resize(crop.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR) > 0.5
        if not scaled.any():  # a 1-pixel lesion shrunk: keep its centre
            scaled[(new_h - 1) // 2, (new_w - 1) // 2] = True
        top, left = round(ys.mean() - (new_h - 1) / 2), round(xs.mean() - (new_w - 1) / 2)
        y0, x0, y1, x1 = max(0, top), max(0, left), min(height, top + new_h), min(width, left + new_w)
        if y1 > y0 and x1 > x0:
            out[y0:y1, x0:x1] |= scaled[y0 - top:y1 - top, x0 - left:x1 - left]
    return layout.with_channel(channel, out)


def move(layout: Layout, channel: str, dx: int, dy: int, where: Region | None = None) -> Layout:
    """Shift ``channel`` (or only its lesions touching ``where``) by (dx, dy) pixels; what leaves the field goes."""
    index = _channel(channel, lesions_only=False)
    if channel == "fov":
        raise RetinaError("move: the field of view stays where it is; move the lesions inside it")
    plane = layout.masks[index]
    region = _region_mask(where, layout.size)
    moving = plane if region is None else remove_lesions(layout, channel, where).channel(channel) ^ plane
    matrix = np.float32([[1, 0, int(dx)], [0, 1, int(dy)]])
    shifted = cv2.warpAffine(moving.astype(np.uint8), matrix, (plane.shape[1], plane.shape[0]),
                             flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    return layout.with_channel(channel, (plane & ~moving) | shifted)


def paint(layout: Layout, channel: str, stroke: np.ndarray, erase: bool = False) -> Layout:
    """A brush stroke (bool mask of the layout's size) painted into, or erased from, ``channel``."""
    _channel(channel, lesions_only=False)
    stroke = _region_mask(stroke, layout.size)
    plane = layout.channel(channel)
    return layout.with_channel(channel, plane & ~stroke if erase else plane | stroke)


def with_grade(layout: Layout, grade: int | None) -> Layout:
    return Layout(layout.masks, grade)


def grade_check(layout: Layout, grade: int | None = None) -> GradeCheck:
    """Which ICDR rule (as :mod:`retina.common.grade_rule` reads it) the lesions break for ``grade``
    (default: the layout's stated grade)."""
    stated = layout.grade if grade is None else parse_grade(grade, "grade")
    masks = dict(zip(CHANNEL_NAMES, layout.masks, strict=True))
    estimated = grade_from_masks(masks)
    if stated is None or stated == estimated:
        return GradeCheck(stated, estimated)
    present = [c for c in LESION_CHANNELS if masks[c].any()]
    proliferative = [LONG_NAMES[c] for c in PROLIFERATIVE_CHANNELS if c in present]
    moderate = [LONG_NAMES[c] for c in MODERATE_CHANNELS if c in present]
    quadrants = haemorrhages_per_quadrant(masks["he"], masks["fov"])
    severe = min(quadrants) >= SEVERE_HAEMORRHAGES_PER_QUADRANT
    need = SEVERE_HAEMORRHAGES_PER_QUADRANT
    problems: list[str] = []
    if stated == 4:
        problems.append("grade 4 needs neovascularisation, fibrous proliferation or laser scars; there are none")
    elif estimated == 4:
        problems.append(f"{', '.join(proliferative)} present: proliferative DR (grade 4)")
    if stated == 3 and estimated < 3:
        problems.append(f"grade 3 needs at least {need} haemorrhages in each quadrant; counted {quadrants}")
    elif estimated == 3 or (stated < 3 and severe):
        problems.append(f"haemorrhages in all four quadrants ({quadrants}, at least {need} each) read as severe "
                        "NPDR (grade 3)")
    if stated == 2 and estimated < 2:
        problems.append("grade 2 needs haemorrhages, hard exudates or cotton-wool spots; there are none")
    elif stated < 2 and moderate:
        problems.append(f"{', '.join(moderate)} present: at least moderate NPDR (grade 2)")
    if stated == 1 and estimated == 0:
        problems.append("grade 1 needs microaneurysms; there are none")
    elif stated == 0 and present:
        problems.append(f"grade 0 has no lesions; found {', '.join(LONG_NAMES[c] for c in present)}")
    return GradeCheck(stated, estimated, tuple(problems))
