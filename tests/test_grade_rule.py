"""The lesion-to-grade rule (retina/common/grade_rule.py) on hand-made masks and on phantom layouts."""

from __future__ import annotations

import numpy as np
import pytest

from retina.common.grade_rule import (
    SEVERE_HAEMORRHAGES_PER_QUADRANT,
    grade_from_masks,
    grade_from_stack,
    haemorrhages_per_quadrant,
)
from retina.common.schema import CHANNEL_INDEX, NUM_CHANNELS

SIZE = 64


def _dots(per_quadrant: list[int]) -> np.ndarray:
    """Separate 2x2 haemorrhages: per_quadrant[q] of them in quadrant q (top-left, top-right, bottom-left, ...)."""
    plane = np.zeros((SIZE, SIZE), bool)
    for quadrant, n in enumerate(per_quadrant):
        y0, x0 = 4 + (quadrant // 2) * SIZE // 2, 4 + (quadrant % 2) * SIZE // 2
        for i in range(n):
            y, x = y0 + 6 * (i // 4), x0 + 6 * (i % 4)
            plane[y:y + 2, x:x + 2] = True
    return plane


def _stack(**lesions: np.ndarray) -> np.ndarray:
    stack = np.zeros((NUM_CHANNELS, SIZE, SIZE), bool)
    stack[CHANNEL_INDEX["fov"]] = True
    for name, plane in lesions.items():
        stack[CHANNEL_INDEX[name]] = plane
    return stack


def _spot(y: int = 10, x: int = 10) -> np.ndarray:
    plane = np.zeros((SIZE, SIZE), bool)
    plane[y:y + 3, x:x + 3] = True
    return plane


SEVERE = [SEVERE_HAEMORRHAGES_PER_QUADRANT] * 4


@pytest.mark.parametrize(("lesions", "grade"), [
    ({}, 0),
    ({"ma": _spot()}, 1),
    ({"ma": _spot(), "ex": _spot(30, 30)}, 2),
    ({"se": _spot()}, 2),
    ({"ma": _spot(), "he": _dots([5, 5, 5, 0])}, 2),  # many haemorrhages, but one quadrant is clear
    ({"he": _dots([SEVERE_HAEMORRHAGES_PER_QUADRANT - 1] + SEVERE[1:])}, 2),  # one short of the threshold
    ({"he": _dots(SEVERE)}, 3),
    ({"he": _dots(SEVERE), "ex": _spot(30, 30)}, 3),
    ({"nv": _spot()}, 4),
    ({"fp": _spot()}, 4),
    ({"laser": _spot(), "ma": _spot(40, 40)}, 4),  # laser scars: a treated proliferative eye
])
def test_each_grade_from_hand_made_masks(lesions, grade):
    assert grade_from_stack(_stack(**lesions)) == grade


def test_one_big_haemorrhage_is_not_severe_and_quadrants_follow_the_field_of_view():
    # A haemorrhage covering a third of the field is one haemorrhage, not "many in four quadrants".
    big = np.zeros((SIZE, SIZE), bool)
    big[10:50, 10:50] = True
    assert grade_from_stack(_stack(he=big)) == 2
    dots = _dots(SEVERE)
    assert haemorrhages_per_quadrant(dots) == SEVERE
    # Quadrants are centred on the field of view: a field in the right half puts every dot left of its centre.
    right_half = np.zeros((SIZE, SIZE), bool)
    right_half[:, SIZE // 2 + 8:] = True
    assert haemorrhages_per_quadrant(dots, right_half)[1] == 0


def test_missing_channels_count_as_no_lesion_and_bad_stacks_are_refused():
    assert grade_from_masks({"ma": _spot()}) == 1  # a set with only MA masks (no fov: quadrants about the centre)
    assert grade_from_masks({"he": _dots(SEVERE)}) == 3
    assert grade_from_masks({}) == 0
    with pytest.raises(ValueError, match="mask stack"):
        grade_from_stack(np.zeros((3, 8, 8), bool))


@pytest.mark.parametrize("grade", range(5))
def test_phantom_layouts_map_back_to_their_grade(grade):
    from retina.phantom.layout import sample_layout

    # Measured on 100 layouts per grade at 128 px: all 500 map back (see grade_rule's threshold comment).
    assert [grade_from_stack(sample_layout(grade, 128, seed).masks) for seed in range(4)] == [grade] * 4
