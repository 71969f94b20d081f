"""Sample grids of the trainers: a row of real masks and grade captions (layout), grade and real/render captions
(renderer)."""

from __future__ import annotations

import numpy as np

from retina.common.captions import caption
from retina.common.schema import NUM_CHANNELS
from retina.layout.sample import colour_masks, preview_grid


def _masks(n: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((n, NUM_CHANNELS, size, size)) > 0.7


def test_layout_grid_has_a_real_row_and_captioned_grade_rows():
    fake, real = _masks(6), _masks(3)
    grades = [0, 0, 2, 2, 4, 4]
    plain = preview_grid(fake, grades, per_row=4)
    grid = preview_grid(fake, grades, per_row=4, real=real, real_grades=[2, 3, 2])
    tile = 64 + 2
    assert plain.shape == (3 * tile, 4 * tile, 3) and grid.shape == (4 * tile, 4 * tile, 3)
    assert np.array_equal(grid[tile:], plain)  # the grade rows are those of the plain grid, under the real row
    first_real = grid[1:65, 1:65]
    assert not np.array_equal(first_real, colour_masks(real[0]))  # captioned
    assert np.array_equal(first_real[40:], colour_masks(real[0])[40:])  # only its top band
    assert np.array_equal(grid[1:65, 3 * tile + 1: 3 * tile + 65], np.zeros((64, 64, 3), np.uint8))  # 3 of 4 real


def test_caption_falls_back_to_the_short_text_on_small_tiles():
    tile = np.full((24, 24, 3), 200, np.uint8)
    long_text, short_text = caption(tile, "grade 4", "g4"), caption(tile, "g4")
    assert np.array_equal(long_text, short_text)
    assert not np.array_equal(caption(np.full((256, 256, 3), 200, np.uint8), "grade 4", "g4"),
                              caption(np.full((256, 256, 3), 200, np.uint8), "g4"))
