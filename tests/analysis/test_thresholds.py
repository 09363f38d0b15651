"""The score threshold chosen on sparse labels: corrected scores from counts, and counts from a module."""

import numpy as np
import pandas as pd
import pytest
import torch

from ece_lightning.analysis.thresholds import choose_threshold, threshold_counts, threshold_table
from ece_lightning.data.dataset import InstanceMapDataset
from ece_lightning.errors import ConfigError
from ece_lightning.modules import DetectionModule


def test_corrected_scores_undo_what_unannotated_cells_do_to_precision():
    # 100 cells, 30 annotated. At 0.3 the detector finds 90 cells (27 annotated) and 30 things that are not; at
    # 0.7, 60 cells (18 annotated) and nothing else: true F1 0.818 and 0.75. The sparse labels prefer 0.7.
    counts = pd.DataFrame({"threshold": [0.3, 0.7], "tp": [27, 18], "predicted": [120, 60], "labelled": [30, 30]})
    table = threshold_table(counts, sparsity=0.3)
    np.testing.assert_allclose(table["sparse_f1"], [2 * 0.225 * 0.9 / 1.125, 2 * 0.3 * 0.6 / 0.9])
    np.testing.assert_allclose(table["exclusive_recall"], [0.9, 0.6])
    np.testing.assert_allclose(table["corrected_precision"], [0.75, 1.0])
    np.testing.assert_allclose(table["corrected_f1"], [2 * 0.75 * 0.9 / 1.65, 0.75])
    np.testing.assert_allclose(table["count_ratio"], [1.2, 0.6])
    assert choose_threshold(table, "sparse_f1") == 0.7 and choose_threshold(table) == 0.3
    # With exhaustive labels the correction changes nothing.
    exhaustive = threshold_table(counts, sparsity=1.0)
    np.testing.assert_allclose(exhaustive["corrected_f1"], exhaustive["sparse_f1"])
    with pytest.raises(ValueError, match="criterion='f2'"):
        choose_threshold(table, "f2")
    with pytest.raises(ValueError, match="sparsity=0"):
        threshold_table(counts, sparsity=0)


def test_counts_come_from_one_pass_and_fall_with_the_threshold():
    torch.manual_seed(0)
    module = DetectionModule(model={"name": "yollo", "base_channels": 4, "depth": 2, "anchor": 8.0},
                             loss={"name": "ce"}, metrics={"point_radius": 4.0})
    instances = np.zeros((2, 32, 32), np.int32)
    instances[:, 4:12, 4:12], instances[:, 20:28, 16:24] = 1, 2
    dataset = InstanceMapDataset(list(np.full((2, 32, 32, 3), 128, np.uint8)), list(instances))
    counts = threshold_counts(module, dataset, thresholds=(0.0, 0.5, 1.0))
    assert counts["labelled"].tolist() == [4, 4, 4] and counts["predicted"].is_monotonic_decreasing
    assert counts["predicted"].iloc[0] > 0 and (counts["tp"] <= counts["labelled"]).all()
    assert module.postprocess_cfg["score_threshold"] == 0.5  # the module's own setting is restored
    with pytest.raises(ValueError, match="thresholds"):
        threshold_counts(module, dataset, thresholds=(1.5,))


def _auto_module(**postprocess):
    return DetectionModule(model={"name": "yollo", "base_channels": 4, "depth": 2, "anchor": 8.0},
                           loss={"name": "ce"}, postprocess={"score_threshold": "auto", **postprocess})


def test_auto_threshold_is_the_corrected_choice_and_travels_in_the_state_dict():
    from ece_lightning.analysis.thresholds import DEFAULT_THRESHOLDS

    module = _auto_module()
    assert module.score_threshold() == 0.5  # nothing chosen before the first validation
    # The counts of the hand-computed case above at 0.3 and 0.7, every other threshold finding nothing: the
    # corrected F1 chooses 0.3 where the sparse labels would choose 0.7.
    counts = torch.zeros(len(DEFAULT_THRESHOLDS), 3, dtype=torch.long)
    counts[:, 2] = 30
    counts[DEFAULT_THRESHOLDS.index(0.3)] = torch.tensor([27, 120, 30])
    counts[DEFAULT_THRESHOLDS.index(0.7)] = torch.tensor([18, 60, 30])
    module.log = lambda *args, **kwargs: None  # no trainer to log to
    assert module.choose_score_threshold(counts, sparsity=0.3) == 0.3
    assert module.score_threshold() == 0.3 and module.postprocess_settings()["score_threshold"] == 0.3
    assert module.choose_score_threshold(counts, sparsity=1.0) == 0.7  # exhaustive labels: plain F1
    # a validation split without labelled objects keeps the last choice
    assert module.choose_score_threshold(torch.zeros_like(counts), sparsity=0.3) is None
    assert module.score_threshold() == 0.7
    restored = _auto_module()
    restored.load_state_dict(module.state_dict())
    assert restored.score_threshold() == 0.7
    # a number given at evaluation replaces the choice; auto cannot be chosen there
    restored.override_postprocess({"score_threshold": 0.45})
    assert restored.score_threshold() == 0.45
    with pytest.raises(ConfigError, match="postprocess.score_threshold=auto is chosen while training"):
        restored.override_postprocess({"score_threshold": "auto"})


def test_a_threshold_that_is_neither_a_number_nor_auto_is_named():
    with pytest.raises(ConfigError, match="task.postprocess.score_threshold='best' must be a number in"):
        _auto_module(score_threshold="best")
    with pytest.raises(ConfigError, match="score_threshold=1.5 must lie in"):
        _auto_module(score_threshold=1.5)
