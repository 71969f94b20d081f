"""The mask half of the procedural phantom: a field of view, an optic disc, a vessel tree and DR lesions.

Lesion kinds and numbers follow the International Clinical DR scale (Wilkinson et al. 2003): grade 0 has no
lesions, 1 microaneurysms only, 2 haemorrhages and hard exudates (maybe cotton-wool spots), 3 many
haemorrhages in all four quadrants, 4 neovascularisation (with optional laser scars and fibrous proliferation).
Everything is drawn straight into binary masks, so the masks are exact by construction; the image half
(:mod:`retina.phantom.render`) paints a photograph from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from retina.common.errors import RetinaError, parse_grade
from retina.common.schema import CHANNEL_INDEX, NUM_CHANNELS

Range = tuple[int, int]


@dataclass
class PhantomLayoutConfig:
    """Geometry (fractions of the image side) and lesion counts per grade (index = grade 0-4).

    Geometry of a macula-centred 45-degree photograph: the disc is ~1/7 of the field wide and its centre lies
    ~2.5 disc diameters nasal to the fovea, which sits near the centre of the frame.
    """

    fov_radius: float = 0.47
    od_radius: tuple[float, float] = (0.055, 0.068)
    od_offset: tuple[float, float] = (0.25, 0.29)  # OD centre to fovea, horizontally
    arcade_height: tuple[float, float] = (0.17, 0.23)  # how far the arcades bow above/below the macula
    vessel_width: float = 0.013  # width of the main arcade vessels at the disc
    artery_width_ratio: float = 0.7  # arteries are ~2/3 as wide as their veins
    branch_width_ratio: float = 0.72  # each branching thins the vessel (Murray's law ~ 2^(-1/3) = 0.79)
    branch_depth: int = 3
    foveal_avascular_zone: float = 0.035
    ma_count: tuple[Range, ...] = ((0, 0), (1, 8), (4, 14), (8, 24), (4, 18))
    he_count: tuple[Range, ...] = ((0, 0), (0, 0), (1, 8), (0, 0), (6, 20))
    he_per_quadrant_severe: Range = (5, 9)  # grade 3: many haemorrhages in each of the four quadrants
    ex_clusters: tuple[Range, ...] = ((0, 0), (0, 0), (1, 4), (1, 5), (0, 4))
    se_count: tuple[Range, ...] = ((0, 0), (0, 0), (0, 2), (0, 4), (0, 3))
    nv_count: tuple[Range, ...] = ((0, 0), (0, 0), (0, 0), (0, 0), (1, 3))
    laser_probability: float = 0.4  # grade 4 only: pan-retinal photocoagulation scars
    laser_count: Range = (30, 70)
    fp_probability: float = 0.35  # grade 4 only: fibrous proliferation along an arcade near the disc


@dataclass
class PhantomLayout:
    masks: np.ndarray  # bool (NUM_CHANNELS, size, size) in CHANNEL_NAMES order
    grade: int
    eye: str  # "left" | "right"
    od_center: tuple[float, float]  # (x, y) pixels
    fovea: tuple[float, float]  # (x, y) pixels
    seed: int


def _plane(size: int) -> np.ndarray:
    return np.zeros((size, size), np.uint8)


def _pt(point: np.ndarray) -> tuple[int, int]:
    return int(round(float(point[0]))), int(round(float(point[1])))


def _draw_polyline(plane: np.ndarray, points: np.ndarray, widths: np.ndarray) -> None:
    # rounded in bulk (np.rint rounds halves to even, as round() does in _pt)
    ends = np.rint(np.asarray(points, dtype=float)).astype(int).tolist()
    thickness = np.maximum(1, np.rint(np.asarray(widths, dtype=float))).astype(int).tolist()
    for a, b, w in zip(ends[:-1], ends[1:], thickness[:-1], strict=True):
        cv2.line(plane, a, b, 1, w, cv2.LINE_8)


class _Builder:
    def __init__(self, size: int, grade: int, seed: int, config: PhantomLayoutConfig):
        self.size, self.grade, self.seed, self.config = size, grade, seed, config
        self.rng = np.random.default_rng(seed)
        self.planes = {name: _plane(size) for name in CHANNEL_INDEX}
        s, rng = size, self.rng
        self.center = np.array([(s - 1) / 2, (s - 1) / 2])
        self.fov_r = config.fov_radius * s
        self.eye = "right" if rng.random() < 0.5 else "left"
        # In a photograph of the right eye the (nasal) disc appears on the right of the frame.
        self.nasal = 1.0 if self.eye == "right" else -1.0
        self.fovea = self.center + rng.normal(0, 0.01, 2) * s
        self.od_r = rng.uniform(*config.od_radius) * s
        self.od = self.fovea + np.array([self.nasal * rng.uniform(*config.od_offset) * s, -rng.uniform(0, 0.04) * s])

    # -- geometry helpers -------------------------------------------------------------------------------
    def inside(self, point: np.ndarray, margin: float = 0.92) -> bool:
        return float(np.hypot(*(point - self.center))) < margin * self.fov_r

    def off_disc(self, point: np.ndarray, factor: float = 1.3) -> bool:
        return float(np.hypot(*(point - self.od))) > factor * self.od_r

    def around_fovea(self, low: float, high: float, angle: tuple[float, float] = (0, 2 * np.pi)) -> np.ndarray:
        """A random point at a distance in [low, high] (fractions of size) from the fovea, inside the field."""
        for _ in range(200):
            theta = self.rng.uniform(*angle)
            radius = self.rng.uniform(low, high) * self.size
            point = self.fovea + radius * np.array([np.cos(theta), np.sin(theta)])
            if self.inside(point) and self.off_disc(point):
                return point
        return self.fovea + 0.05 * self.size  # degenerate tiny fields: any central point will do

    def radius(self, low: float, high: float) -> int:
        return max(1, int(round(self.rng.uniform(low, high) * self.size)))

    # -- anatomy ------------------------------------------------------------------------------------------
    def draw_fov_and_disc(self) -> None:
        cv2.circle(self.planes["fov"], _pt(self.center), int(round(self.fov_r)), 1, -1)
        axes = (max(1, int(round(self.od_r * 0.92))), max(1, int(round(self.od_r))))  # slightly tall oval
        cv2.ellipse(self.planes["od"], _pt(self.od), axes, 0, 0, 360, 1, -1)

    def grow(self, start: np.ndarray, heading: float, width: float, length: float, depth: int) -> None:
        """A wandering vessel that thins along its length and branches into thinner children."""
        cfg, rng, s = self.config, self.rng, self.size
        step = max(1.0, 0.012 * s)
        n = max(2, int(length / step))
        turn = rng.normal(0, 0.05)
        points, widths = [start], []
        x, y, angle = float(start[0]), float(start[1]), heading
        # scalar math, not numpy: this loop is most of the procedural prior's sampling time
        cx, cy, fx, fy = float(self.center[0]), float(self.center[1]), float(self.fovea[0]), float(self.fovea[1])
        field, avascular = 1.02 * self.fov_r, cfg.foveal_avascular_zone * s
        for i in range(n):
            turn = 0.8 * turn + rng.normal(0, 0.06)
            angle += turn
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            if not math.hypot(x - cx, y - cy) < field or math.hypot(x - fx, y - fy) < avascular:
                break
            points.append(np.array((x, y)))
            widths.append(width * (1 - 0.3 * i / n))
        if len(points) < 2:
            return
        _draw_polyline(self.planes["vessels"], np.array(points), np.array(widths + [widths[-1]]))
        if depth <= 0:
            return
        for _ in range(rng.integers(1, 4 if depth > 1 else 3)):
            k = int(rng.integers(1, len(points)))
            side = rng.choice([-1.0, 1.0])
            child = heading + side * rng.uniform(0.5, 1.1)
            self.grow(points[k], child, width * cfg.branch_width_ratio, length * rng.uniform(0.4, 0.7), depth - 1)

    def draw_arcade(self, up: float, height: float, width_scale: float) -> None:
        """A main arcade: leaves the disc vertically and bows temporally around the macula (half ellipse)."""
        cfg, rng, s = self.config, self.rng, self.size
        a = abs(self.od[0] - self.fovea[0]) * rng.uniform(1.0, 1.15)
        b = height * s
        theta = np.linspace(0, np.radians(rng.uniform(115, 145)), 40)
        wobble = np.cumsum(rng.normal(0, 0.004 * s, (theta.size, 2)), axis=0)
        wobble[0] = 0
        xs = self.od[0] - self.nasal * a * (1 - np.cos(theta))
        ys = self.od[1] - up * b * np.sin(theta)
        points = np.stack([xs, ys], 1) + wobble * np.linspace(0, 1, theta.size)[:, None]
        keep = [0] + [i for i in range(1, len(points)) if self.inside(points[i], 1.02)]
        points = points[keep]
        width0 = cfg.vessel_width * s * width_scale
        widths = width0 * np.linspace(1.0, 0.45, len(points))
        _draw_polyline(self.planes["vessels"], points, widths)
        self.arcades.append(points)
        # The arcade runs on past the macula towards the temporal periphery, branching as it goes.
        tail = points[-1] - points[-2]
        self.grow(points[-1], float(np.arctan2(tail[1], tail[0])), widths[-1], 0.2 * s, cfg.branch_depth - 1)
        # Branches: outwards to the periphery and, shorter, inwards towards the macula.
        ellipse_centre = np.array([self.od[0] - self.nasal * a, self.od[1]])
        for _ in range(int(rng.integers(3, 6))):
            k = min(int(rng.integers(4, max(5, len(points) - 2))), len(points) - 2)
            tangent = points[k + 1] - points[k]
            tangent = tangent / max(1e-6, float(np.hypot(*tangent)))
            normal = np.array([-tangent[1], tangent[0]])
            if np.dot(normal, points[k] - ellipse_centre) < 0:
                normal = -normal
            outward = rng.random() < 0.65
            alpha = rng.uniform(0.5, 1.0)
            direction = tangent * np.cos(alpha) + (normal if outward else -normal) * np.sin(alpha)
            length = (0.25 if outward else 0.12) * s * rng.uniform(0.7, 1.3)
            self.grow(points[k], float(np.arctan2(direction[1], direction[0])), widths[k] * cfg.branch_width_ratio,
                      length, cfg.branch_depth - 1)

    def draw_vessels(self) -> None:
        self.arcades: list[np.ndarray] = []
        cfg, rng, s = self.config, self.rng, self.size
        # Each arcade is a vein with its thinner artery running beside it.
        for up in (+1.0, -1.0):
            height = rng.uniform(*cfg.arcade_height)
            self.draw_arcade(up, height, 1.0)
            self.draw_arcade(up, height * rng.uniform(0.82, 0.92), cfg.artery_width_ratio)
        # Nasal vessels: fan out from the disc towards the nasal periphery, above and below.
        for up in (+1.0, -1.0):
            heading = np.arctan2(-up * rng.uniform(0.6, 1.2), self.nasal)
            self.grow(self.od.copy(), heading, cfg.vessel_width * s * 0.75, 0.3 * s, cfg.branch_depth - 1)
        # Small macular branches straight from the disc, heading temporally.
        heading = np.arctan2(rng.normal(0, 0.2), -self.nasal)
        self.grow(self.od.copy(), heading, cfg.vessel_width * s * 0.45, 0.14 * s, 1)

    # -- lesions -----------------------------------------------------------------------------------------
    def count(self, ranges: tuple[Range, ...]) -> int:
        low, high = ranges[self.grade]
        return int(self.rng.integers(low, high + 1))

    # One lesion of each kind at a given place: the grade-level draw_* below place them by the ICDR scale, and
    # retina.edit calls these to add lesions to an existing layout, so added lesions look like sampled ones.
    def microaneurysm(self, point: np.ndarray) -> None:
        cv2.circle(self.planes["ma"], _pt(point), self.radius(0.003, 0.007), 1, -1)

    def draw_ma(self) -> None:
        for _ in range(self.count(self.config.ma_count)):
            self.microaneurysm(self.around_fovea(0.04, 0.3))

    def haemorrhage(self, point: np.ndarray) -> None:
        rng = self.rng
        if rng.random() < 0.3:  # flame-shaped: long, thin
            axes = (self.radius(0.012, 0.025), self.radius(0.004, 0.008))
        else:  # dot and blot; blots are irregular, drawn as a few overlapping ellipses
            major = self.radius(0.006, 0.02)
            axes = (major, max(1, int(major * rng.uniform(0.6, 1.0))))
            for _ in range(int(rng.integers(0, 3))):
                lobe = point + rng.normal(0, 0.5 * major, 2)
                lobe_axes = (max(1, int(axes[0] * rng.uniform(0.4, 0.8))), max(1, int(axes[1] * rng.uniform(0.4, 0.8))))
                cv2.ellipse(self.planes["he"], _pt(lobe), lobe_axes, rng.uniform(0, 180), 0, 360, 1, -1)
        cv2.ellipse(self.planes["he"], _pt(point), axes, rng.uniform(0, 180), 0, 360, 1, -1)

    def draw_he(self) -> None:
        if self.grade == 3:
            for quadrant in range(4):
                angle = (quadrant * np.pi / 2, (quadrant + 1) * np.pi / 2)
                for _ in range(int(self.rng.integers(*self.config.he_per_quadrant_severe) + 1)):
                    self.haemorrhage(self.around_fovea(0.06, 0.36, angle))
            return
        for _ in range(self.count(self.config.he_count)):
            self.haemorrhage(self.around_fovea(0.05, 0.34))

    def exudate_cluster(self, centre: np.ndarray) -> None:
        rng = self.rng
        spread = rng.uniform(0.02, 0.05) * self.size
        circinate = rng.random() < 0.3
        for _ in range(int(rng.integers(3, 12))):
            if circinate:  # a ring of exudates around a leaking centre
                theta = rng.uniform(0, 2 * np.pi)
                point = centre + spread * rng.uniform(0.8, 1.1) * np.array([np.cos(theta), np.sin(theta)])
            else:
                point = centre + rng.normal(0, spread / 2, 2)
            if self.inside(point) and self.off_disc(point):
                cv2.circle(self.planes["ex"], _pt(point), self.radius(0.003, 0.01), 1, -1)

    def draw_ex(self) -> None:
        for _ in range(self.count(self.config.ex_clusters)):
            self.exudate_cluster(self.around_fovea(0.05, 0.25))

    def draw_se(self) -> None:
        rng = self.rng
        for _ in range(self.count(self.config.se_count)):
            # Cotton-wool spots lie near the disc and along the arcades (nerve fibre layer infarcts).
            arcade = self.arcades[int(rng.integers(len(self.arcades)))]
            point = arcade[int(rng.integers(len(arcade) // 2))] + rng.normal(0, 0.03 * self.size, 2)
            if not (self.inside(point) and self.off_disc(point)):
                continue
            self.cotton_wool_spot(point)

    def cotton_wool_spot(self, point: np.ndarray) -> None:
        rng = self.rng
        for _ in range(int(rng.integers(2, 5))):
            blob = point + rng.normal(0, 0.008 * self.size, 2)
            axes = (self.radius(0.01, 0.022), self.radius(0.007, 0.015))
            cv2.ellipse(self.planes["se"], _pt(blob), axes, rng.uniform(0, 180), 0, 360, 1, -1)

    def draw_nv(self) -> None:
        rng = self.rng
        for index in range(self.count(self.config.nv_count)):
            if index == 0 or rng.random() < 0.5:  # NVD: on or within one disc diameter of the disc
                theta = rng.uniform(0, 2 * np.pi)
                centre = self.od + rng.uniform(0, 1.5) * self.od_r * np.array([np.cos(theta), np.sin(theta)])
            else:  # NVE: along an arcade
                arcade = self.arcades[int(rng.integers(len(self.arcades)))]
                centre = arcade[int(rng.integers(len(arcade) // 4, len(arcade)))]
            self.nv_tangle(centre)
        self.planes["nv"] &= self.planes["fov"]
        if self.grade == 4 and not self.planes["nv"].any():  # the grade promises NV: keep at least a trace
            cv2.circle(self.planes["nv"], _pt(self.od), 1, 1, -1)

    def nv_tangle(self, centre: np.ndarray) -> None:
        """A tangle of fine looping new vessels around ``centre``."""
        rng, s = self.rng, self.size
        region = rng.uniform(0.03, 0.06) * s
        for _ in range(int(rng.integers(3, 7))):
            point, angle = centre + rng.normal(0, region / 3, 2), rng.uniform(0, 2 * np.pi)
            points = [point]
            for _ in range(int(rng.integers(6, 14))):
                angle += rng.normal(0.5, 0.5)
                point = point + max(1.0, 0.012 * s) * np.array([np.cos(angle), np.sin(angle)])
                points.append(point)
            points = np.array(points)
            _draw_polyline(self.planes["nv"], points, np.ones(len(points)))

    def fibrous_band(self, path: np.ndarray) -> None:
        """Fibrous proliferation: a broad pale band along ``path`` (points along a vessel near the disc)."""
        widths = np.full(len(path), self.rng.uniform(0.02, 0.035) * self.size)
        _draw_polyline(self.planes["fp"], path, widths)

    def draw_laser(self) -> None:
        rng = self.rng
        if self.grade != 4 or rng.random() >= self.config.laser_probability:
            return
        placed: list[np.ndarray] = []
        spot = self.radius(0.01, 0.015)
        for _ in range(int(rng.integers(*self.config.laser_count)) * 4):
            if len(placed) >= self.config.laser_count[1]:
                break
            # Pan-retinal photocoagulation spares the posterior pole.
            point = self.around_fovea(0.3, 0.6)
            if self.off_disc(point, 2.5) and all(np.hypot(*(point - p)) > 3 * spot for p in placed):
                placed.append(point)
                cv2.circle(self.planes["laser"], _pt(point), spot, 1, -1)

    def draw_fp(self) -> None:
        rng = self.rng
        if self.grade != 4 or rng.random() >= self.config.fp_probability:
            return
        arcade = self.arcades[int(rng.integers(len(self.arcades)))]
        self.fibrous_band(arcade[: max(2, len(arcade) // int(rng.integers(3, 5)))])

    def build(self) -> PhantomLayout:
        self.draw_fov_and_disc()
        self.draw_vessels()
        self.draw_ma()
        self.draw_he()
        self.draw_ex()
        self.draw_se()
        self.draw_nv()
        self.draw_laser()
        self.draw_fp()
        fov = self.planes["fov"].astype(bool)
        masks = np.zeros((NUM_CHANNELS, self.size, self.size), bool)
        for name, index in CHANNEL_INDEX.items():
            masks[index] = self.planes[name].astype(bool) & fov
        return PhantomLayout(
            masks=masks, grade=self.grade, eye=self.eye,
            od_center=(float(self.od[0]), float(self.od[1])),
            fovea=(float(self.fovea[0]), float(self.fovea[1])), seed=self.seed,
        )


def sample_layout(grade: int, size: int, seed: int, config: PhantomLayoutConfig | None = None) -> PhantomLayout:
    """A procedural mask stack of one eye at ``grade`` (0-4); the same seed gives the same masks."""
    grade = parse_grade(grade, "phantom grade")
    if int(size) < 16:
        raise RetinaError(f"a phantom of {size}px is too small to draw; use 16 px or more")
    return _Builder(int(size), grade, int(seed), config or PhantomLayoutConfig()).build()
