import numpy as np
import pytest

from ece_lightning.inference.tiling import TileGrid, tiles_with_tissue, tissue_mask


@pytest.mark.parametrize("tile,overlap,multiple", [(512, 64, 16), (128, 32, 8), (64, 0, 16), (96, 32, 4)])
def test_tile_cores_partition_the_image_and_windows_sum_to_one(tile, overlap, multiple):
    grid = TileGrid(700, 433, tile=tile, overlap=overlap, multiple=multiple, block_tiles=2, margin=20)
    cores = np.zeros((grid.height, grid.width), int)
    weight = np.zeros((grid.height, grid.width))
    window = grid.window()
    for row in range(grid.rows):
        for col in range(grid.cols):
            top, left = grid.tile_origin(row, col)
            assert top % multiple == 0 and left % multiple == 0  # the single-pass pooling grid
            cores[row * grid.step : (row + 1) * grid.step, col * grid.step : (col + 1) * grid.step] += 1
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + tile, grid.height), min(left + tile, grid.width)
            weight[y0:y1, x0:x1] += window[y0 - top : y1 - top, x0 - left : x1 - left]
    assert (cores == 1).all()
    assert (weight > 0).all()
    # Away from the image border the ramps of neighbouring tiles add up to exactly one.
    inner = weight[grid.pad : grid.height - grid.tile, grid.pad : grid.width - grid.tile]
    np.testing.assert_allclose(inner, 1.0, atol=1e-6)


def test_tiles_over_is_every_tile_that_touches_the_region():
    grid = TileGrid(1000, 1000, tile=128, overlap=32, multiple=16, block_tiles=3, margin=40)
    for block in [(0, 0), (1, 2), (grid.block_rows - 1, grid.block_cols - 1)]:
        top, left, bottom, right = grid.block_region(*block)
        expected = []
        for row in range(grid.rows):
            for col in range(grid.cols):
                ty, tx = grid.tile_origin(row, col)
                if ty < bottom and ty + grid.tile > top and tx < right and tx + grid.tile > left:
                    expected.append((row, col))
        assert grid.tiles_over(top, left, bottom, right) == expected


def test_block_cores_partition_and_regions_grow_by_the_margin():
    grid = TileGrid(900, 700, tile=128, overlap=32, multiple=16, block_tiles=2, margin=30)
    covered = np.zeros((900, 700), int)
    for row in range(grid.block_rows):
        for col in range(grid.block_cols):
            top, left, bottom, right = grid.block_core(row, col)
            covered[top:bottom, left:right] += 1
            r_top, r_left, r_bottom, r_right = grid.block_region(row, col)
            assert r_top == max(top - 30, 0) and r_right == min(right + 30, 700)
    assert (covered == 1).all()


@pytest.mark.parametrize("kwargs,field", [
    ({"tile": 100}, "tile=100"), ({"overlap": 24}, "overlap=24"), ({"overlap": 512}, "overlap=512"), ({"overlap": 288}, "at most half of tile=512"),
    ({"block_tiles": 0}, "block_tiles=0"), ({"margin": -1}, "margin=-1"),
])
def test_bad_geometry_is_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TileGrid(1000, 1000, **{"tile": 512, "overlap": 64, "multiple": 16, **kwargs})


def test_tissue_mask_keeps_stained_tiles_and_drops_glass():
    thumbnail = np.full((100, 100, 3), 250, np.uint8)  # glass
    thumbnail[60:, 60:] = (236, 196, 216)  # pink tissue
    mask = tissue_mask(thumbnail)
    assert mask[80, 80] and not mask[10, 10]
    grid = TileGrid(1000, 1000, tile=128, overlap=32, multiple=16)
    keep = tiles_with_tissue(grid, mask, scale=10.0)
    assert keep[-1, -1] and not keep[0, 0]
    assert 0 < keep.sum() < keep.size
