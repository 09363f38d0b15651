from pathlib import Path

import pytest

from ece_lightning.data.readers import DatasetError, Item
from ece_lightning.data.splits import split_items


def items(n, test_every=0, groups=None):
    return [Item(id=f"im{i:02d}", image=Path("x"), annotation=None,
                 split="test" if test_every and i % test_every == 0 else "train",
                 group=None if groups is None else f"g{i // groups}") for i in range(n)]


def test_given_split_keeps_the_test_set_and_draws_30_percent_validation():
    data = items(20, test_every=4)
    splits = split_items(data, method="given", val=0.3, seed=0)
    assert splits["test"] == sorted(i.id for i in data if i.split == "test")
    assert len(splits["val"]) == 4 and len(splits["train"]) == 11  # round(0.3 * 15)
    assert splits == split_items(data, method="given", val=0.3, seed=0)  # seeded
    assert splits["val"] != split_items(data, method="given", val=0.3, seed=1)["val"]


def test_group_split_never_shares_a_slide_between_splits():
    data = items(50, groups=5)  # 10 slides of 5 images
    splits = split_items(data, method="random", by="group", test=0.2, val=0.2, seed=3)
    group_of = {i.id: i.group for i in data}
    seen = [{group_of[i] for i in ids} for ids in splits.values()]
    assert [len(s) for s in seen] == [6, 2, 2]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_counts_and_auto_fallback():
    data = items(15)
    splits = split_items(data, method="auto", test=4, val=3, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [8, 3, 4]
    assert split_items(items(8, test_every=4), method="auto", val=1)["test"] == ["im00", "im04"]


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "given"}, "gives no test images"),
    ({"method": "random", "test": 10, "val": 5}, "leaves no image to train on"),
    ({"method": "random", "test": 2.5}, "dataset.split.test=2.5"),
    ({"method": "slides"}, "dataset.split.method='slides' must be one of auto, given, random"),
])
def test_bad_split_settings_are_named(kwargs, message):
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")):
        split_items(items(15), **kwargs)
