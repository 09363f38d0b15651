import json

import pytest
import torch
from torch import nn

from ece_lightning.errors import ConfigError
from ece_lightning.modules import SegmentationModule
from ece_lightning.modules.teacher import MeanTeacher, build_teacher

from ..cli.helpers import TINY, run_cli


def _fixed_net(object_logit: torch.Tensor) -> nn.Module:
    """A network whose object-minus-background logit at each pixel is the image's first channel times
    ``object_logit`` (a 1x1 convolution), so its probabilities are known."""
    net = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([0.0, float(object_logit)]).reshape(2, 1, 1, 1))
    return net


def test_pseudo_labels_only_where_unannotated_and_confident():
    teacher = MeanTeacher(_fixed_net(torch.tensor(1.0)), threshold=0.9)
    logit = torch.tensor([[[[4.0, 1.0], [4.0, -3.0]]]])  # p_obj = sigmoid: 0.982, 0.731, 0.982, 0.047
    target = torch.tensor([[[0, 0], [1, 1]]])
    pseudo_target, pseudo = teacher.pseudo_targets(logit, target)
    assert pseudo_target.tolist() == [[[1, 0], [1, 1]]]
    assert pseudo.tolist() == [[[True, False], [False, False]]]  # annotated pixels keep their own label
    assert pseudo_target.dtype == target.dtype


def test_ema_update_follows_the_student():
    student = _fixed_net(torch.tensor(2.0))
    teacher = MeanTeacher(student, momentum=0.9)
    with torch.no_grad():
        student.weight.add_(1.0)
    teacher.update(student, step=0)  # the first steps decay min(0.9, 1/10) = 0.1
    torch.testing.assert_close(teacher.net.weight, 0.1 * (student.weight - 1.0) + 0.9 * student.weight)
    before = teacher.net.weight.clone()
    teacher.update(student, step=1000)  # then the momentum itself
    torch.testing.assert_close(teacher.net.weight, 0.9 * before + 0.1 * student.weight)
    assert not teacher.net.weight.requires_grad


def test_batch_norm_statistics_are_copied_and_the_teacher_predicts_in_eval_mode():
    student = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    teacher = MeanTeacher(student, threshold=0.6)
    student(torch.randn(4, 1, 3, 3) * 5 + 2)  # training-mode forward: running statistics move
    teacher.update(student, step=5)
    torch.testing.assert_close(teacher.net[1].running_mean, student[1].running_mean)
    teacher.train()
    teacher.pseudo_targets(torch.randn(1, 1, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long))
    assert not teacher.net.training


def test_active_after_start_and_never_at_threshold_one():
    teacher = MeanTeacher(_fixed_net(torch.tensor(1.0)), start=0.3)
    assert not teacher.active(0.2) and teacher.active(0.3)
    assert not MeanTeacher(_fixed_net(torch.tensor(1.0)), threshold=1.0, start=0.0).active(0.9)


@pytest.mark.parametrize("config, message", [
    ({"momentum": 1.0}, r"task.teacher.momentum=1.0 must be in \[0, 1\)"),
    ({"threshold": 0.4}, r"task.teacher.threshold=0.4 must be in \(0.5, 1\]"),
    ({"start": 1.0}, "task.teacher.start=1.0 must be a fraction"),
    ({"ema": 0.9}, "task.teacher has unknown key\\(s\\) ema; valid: momentum, threshold, start"),
])
def test_bad_teacher_settings_are_named(config, message):
    with pytest.raises(ConfigError, match=message):
        build_teacher(config, _fixed_net(torch.tensor(1.0)))


def test_no_teacher_config_means_no_teacher_and_the_optimiser_skips_the_teacher():
    model = {"name": "unet", "base_channels": 4, "depth": 2}
    assert SegmentationModule(model=model, loss={"name": "ce"}).teacher is None
    module = SegmentationModule(model=model, loss={"name": "ce"}, teacher={"momentum": 0.9})
    optimised = {id(p) for group in module.configure_optimizers().param_groups for p in group["params"]}
    assert optimised == {id(p) for p in module.net.parameters()}


def test_the_teacher_trains_through_the_cli_and_travels_in_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    teacher = "task.teacher={momentum: 0.9, threshold: 0.6, start: 0.0}"
    result = run_cli("ece-train", *TINY, "trainer.max_epochs=3", "loss=ece", "sparsity=0.5", teacher,
                     f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["train/pseudo_share"] <= 1.0
    checkpoint = out / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    teacher_keys = sorted(key for key in state if key.startswith("teacher.net."))
    assert teacher_keys == sorted("teacher." + key for key in state if key.startswith("net."))
    # The average lags the student: after 6 steps they differ, and the restored module holds the saved teacher.
    assert any(not torch.equal(state[key], state[key.removeprefix("teacher.")]) for key in teacher_keys
               if state[key].is_floating_point())
    restored = SegmentationModule.load_from_checkpoint(checkpoint, map_location="cpu")
    for key, value in restored.teacher.net.state_dict().items():
        torch.testing.assert_close(value, state["teacher.net." + key])


def test_a_teacher_with_the_automatic_pu_prior_is_refused_with_the_reason():
    model = {"name": "unet", "base_channels": 4, "depth": 2}
    with pytest.raises(ConfigError, match="task.teacher with loss=pu \\(prior auto\\)"):
        SegmentationModule(model=model, loss={"name": "pu", "sparsity": 0.3}, teacher={"momentum": 0.9})
    SegmentationModule(model=model, loss={"name": "pu", "sparsity": 0.3, "prior": 0.16}, teacher={"momentum": 0.9})


class _FixedOutputs(nn.Module):
    """A detection 'network' whose outputs are given: the teacher's detections are then known."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.register_buffer("outputs", outputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.outputs.expand(len(images), -1, -1, -1)


def test_detection_teacher_adds_its_confident_boxes_that_overlap_no_label():
    from ece_lightning.modules import DetectionModule

    module = DetectionModule(model={"name": "yollo", "base_channels": 4, "depth": 2, "anchor": 8.0},
                             loss={"name": "ece"}, teacher={"threshold": 0.9, "start": 0.0})
    outputs = torch.zeros(1, 5, 8, 8)  # 32-px images at stride 4; sizes = the anchor, centres mid-cell
    outputs[0, 0] = -6.0
    outputs[0, 0, 1, 1], outputs[0, 0, 5, 5], outputs[0, 0, 2, 6] = 6.0, 6.0, 1.0  # p 0.998, 0.998, 0.73
    module.teacher.net = _FixedOutputs(outputs)
    labels = torch.tensor([[2.0, 2.0, 10.0, 10.0]])  # the nucleus at cell (1, 1) is annotated
    boxes, image_index, added = module.pseudo_boxes(torch.rand(1, 3, 32, 32), labels, torch.tensor([0]))
    assert added == 1 and image_index.tolist() == [0, 0]  # cell (5, 5); cell (2, 6) is below the threshold
    torch.testing.assert_close(boxes[0], labels[0])
    centre = (boxes[1, :2] + boxes[1, 2:]) / 2
    torch.testing.assert_close(centre, torch.tensor([22.0, 22.0]))  # (5 + 0.5) * stride 4
    # no labels in the image: every confident detection is added
    _, _, added = module.pseudo_boxes(torch.rand(2, 3, 32, 32), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert added == 4


def test_the_detection_teacher_trains_through_the_cli_and_travels_in_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    teacher = "task.teacher={momentum: 0.9, threshold: 0.6, start: 0.0}"
    result = run_cli("ece-train", "task=detection", "model=yollo", *TINY, "trainer.max_epochs=3", "loss=ece",
                     "sparsity=0.5", teacher, f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["train/pseudo_share"] <= 1.0
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert sorted(k for k in state if k.startswith("teacher.net.")) == sorted(
        "teacher." + k for k in state if k.startswith("net."))
    with pytest.raises(ConfigError, match="task.teacher with loss=pu \\(prior auto\\)"):
        from ece_lightning.modules import DetectionModule

        DetectionModule(model={"name": "yollo", "base_channels": 4, "depth": 2}, loss={"name": "pu", "sparsity": 0.3},
                        teacher={"momentum": 0.9})
