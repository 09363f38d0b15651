import numpy as np
import pytest

from ece_lightning.data.readers.cpm import read_cpm15_mask


def test_reads_the_ascii_layout_x_fastest(tmp_path):
    path = tmp_path / "image01_mask.txt"
    path.write_text("3 2\n0\n1\n1\n2\n0\n0\n")
    np.testing.assert_array_equal(read_cpm15_mask(path), [[0, 1, 1], [2, 0, 0]])


@pytest.mark.parametrize("text, message", [
    ("3 2\n0\n1\n", "header says 3x2 = 6 labels but the file holds 2"),
    ("3\n0\n1\n1\n", "first line must be 'W H'"),
    ("1 1\nx\n", "not an ASCII CPM-15 mask"),
])
def test_malformed_masks_name_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "bad_mask.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad_mask.txt") as info:
        read_cpm15_mask(path)
    assert message in str(info.value)


def test_real_cpm15_masks_hold_the_published_nucleus_count(cpm15_masks):
    assert len(cpm15_masks) == 15
    assert sum(len(np.unique(m)) - 1 for m in cpm15_masks.values()) == 2905
