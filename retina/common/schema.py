"""The semantic label schema: which mask channels exist, in which order, and how they are drawn.

Channels overlap (multi-label, as in Lesion-Net): a haemorrhage may lie on a vessel, so a mask stack is
``(C, H, W)`` of independent binary planes, never a one-hot class map.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Channel:
    name: str  # folder name under masks/
    long_name: str
    color: tuple[int, int, int]  # RGB used in previews
    lesion: bool  # counted as a DR lesion (for lesion statistics and segmentation benchmarks)


CHANNELS: tuple[Channel, ...] = (
    Channel("vessels", "retinal vessels", (255, 255, 255), False),
    Channel("od", "optic disc", (255, 255, 0), False),
    Channel("ma", "microaneurysms", (255, 0, 0), True),
    Channel("he", "haemorrhages", (200, 0, 200), True),
    Channel("ex", "hard exudates", (0, 255, 0), True),
    Channel("se", "soft exudates (cotton-wool spots)", (0, 200, 255), True),
    Channel("nv", "neovascularisation", (255, 128, 0), True),
    Channel("laser", "laser photocoagulation marks", (128, 128, 255), True),
    Channel("fp", "fibrous proliferation", (160, 255, 160), True),
    Channel("fov", "field of view", (64, 64, 64), False),
)

CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)
NUM_CHANNELS = len(CHANNELS)
LESION_CHANNELS: tuple[str, ...] = tuple(c.name for c in CHANNELS if c.lesion)
CHANNEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(CHANNEL_NAMES)}

# International Clinical Diabetic Retinopathy scale.
GRADES: tuple[int, ...] = (0, 1, 2, 3, 4)
GRADE_NAMES: tuple[str, ...] = ("no DR", "mild NPDR", "moderate NPDR", "severe NPDR", "proliferative DR")
NUM_GRADES = len(GRADES)

# Other spellings seen in public data sets, mapped to our channel names.
CHANNEL_ALIASES: dict[str, str] = {
    "vessel": "vessels",
    "optic_disc": "od",
    "opticdisc": "od",
    "microaneurysms": "ma",
    "haemorrhages": "he",
    "hemorrhages": "he",
    "hard_exudates": "ex",
    "soft_exudates": "se",
    "cotton_wool_spots": "se",
    "neovascularization": "nv",
    "neovascularisation": "nv",
    "laser_marks": "laser",
    "fibrous_proliferation": "fp",
    "field_of_view": "fov",
}


def channel_index(name: str) -> int:
    """Index of a channel by its name or a known alias (case-insensitive)."""
    key = name.lower()
    key = CHANNEL_ALIASES.get(key, key)
    if key not in CHANNEL_INDEX:
        from retina.common.errors import RetinaError

        raise RetinaError(f"unknown mask channel '{name}': known channels are {', '.join(CHANNEL_NAMES)}")
    return CHANNEL_INDEX[key]
