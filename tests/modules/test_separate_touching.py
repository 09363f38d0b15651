import json

import pytest
import torch

from ece_lightning.errors import ConfigError
from ece_lightning.modules import SegmentationModule

from ..cli.helpers import TINY, run_cli

MODEL = {"name": "unet", "base_channels": 4, "depth": 2}


def _batch() -> dict[str, torch.Tensor]:
    instances = torch.zeros(1, 8, 8, dtype=torch.int32)
    instances[0, 1:5, 1:4], instances[0, 1:5, 4:7] = 1, 2
    return {"image": torch.rand(1, 3, 8, 8), "target": (instances > 0).long(), "instances": instances}


@pytest.mark.parametrize("separate", [False, True])
def test_training_target_gets_a_gap_where_annotated_instances_touch(separate):
    module = SegmentationModule(model=MODEL, loss={"name": "ce"}, separate_touching=separate)
    seen = []
    module.criterion.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[1].clone()))
    module.log_training_loss = lambda *args, **kwargs: None
    batch = _batch()
    module.training_step(batch, 0)
    expected = batch["target"].clone()
    if separate:
        expected[0, 1:5, 3] = 0  # instance 1's column next to instance 2
    assert torch.equal(seen[0], expected)
    assert torch.equal(batch["target"], (batch["instances"] > 0).long())  # the batch itself is left alone


def test_separate_touching_must_be_a_boolean():
    with pytest.raises(ConfigError, match="task.separate_touching='yes'"):
        SegmentationModule(model=MODEL, loss={"name": "ce"}, separate_touching="yes")


def test_separate_touching_trains_through_the_cli_and_is_kept_in_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = run_cli("ece-train", *TINY, "trainer.max_epochs=2", "loss=pu", "sparsity=0.5",
                     "loss.annotation_margin=1", "task.separate_touching=true", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["test/dice"] >= 0.0
    restored = SegmentationModule.load_from_checkpoint(out / "checkpoints" / "last.ckpt", map_location="cpu")
    assert restored.separate_touching is True
    assert restored.criterion.annotation_margin == 1
