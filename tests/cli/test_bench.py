import pytest
import torch

from ece_lightning.cli.bench import main
from ece_lightning.losses import LOSSES


def test_loss_benchmark_prints_a_ratio_for_every_registry_loss(capsys):
    assert main(["loss", "--device", "cpu", "--shape", "2", "2", "16", "16", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| cpu |")]
    names = {row.split("|")[3].strip() for row in rows}
    assert {"torch.cross_entropy", "ece (reference)", "pu (sparsity 0.3, log)", "pu (sparsity 0.3, sigmoid)",
            "pu (sparsity 0.3, sigmoid, annotation_margin 1)",
            *(set(LOSSES) - {"pu"})} <= names
    for row in rows:
        assert float(row.split("|")[5]) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device: the refusal cannot happen")
def test_cuda_benchmark_without_a_gpu_says_so(capsys):
    assert main(["loss", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_data_benchmark_prints_images_per_second_with_and_without_augmentation(capsys):
    assert main(["data", "--size", "64", "--batches", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| synthetic |")]
    assert [row.split("|")[2].strip() for row in rows] == ["crop only", "paper"]
    assert all(float(row.split("|")[4]) > 0 and int(row.split("|")[5]) >= 1 for row in rows)


@pytest.mark.parametrize("options", [[], ["--workers", "2", "--augment", "paper"]])
def test_train_benchmark_compares_lightning_and_loss_dynamics_with_a_bare_loop(capsys, options):
    assert main(["train", "--size", "32", "--batch-size", "2", "--width", "4", "--depth", "2", "--steps", "3",
                 "--warmup", "1", "--repeats", "1", *options]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("| ")}
    assert {"bare loop, resident batch", "bare PyTorch loop", "Lightning (ece-train step)",
            "Lightning + LossDynamics", "Lightning + EMA teacher (self-training)"} <= set(rows)
    assert float(rows["bare PyTorch loop"][4]) == 1.0
    for name, row in rows.items():
        if name != "variant":
            step_ms, images_per_s = float(row[2]), float(row[3])
            assert step_ms > 0 and images_per_s == pytest.approx(2 / (step_ms / 1e3), rel=0.02)
    assert "LossDynamics overhead:" in out and "of the resident-batch ceiling" in out
    assert "Self-training (EMA teacher forward + update, pseudo-labels every step):" in out
    assert ("2 loader processes" in out) == bool(options) and ("augment paper" in out) == bool(options)


def test_train_benchmark_rejects_too_few_steps_and_losses_with_pixel_state(capsys):
    assert main(["train", "--steps", "1"]) == 2
    assert "steps=1 must be >= 2" in capsys.readouterr().err
    assert main(["train", "--loss", "elr"]) == 2
    assert "loss='elr' cannot be benchmarked here" in capsys.readouterr().err
    assert main(["train", "--workers", "-1"]) == 2
    assert "workers=-1 must be >= 0" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "--device", "cuda"]) == 2
        assert "no CUDA device is available" in capsys.readouterr().err


def test_metrics_benchmark_times_each_metric_against_the_per_instance_aji(capsys):
    assert main(["metrics", "--repeats", "1", "--validation"]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| synthetic ellipses")]
    assert [row[3].strip() for row in rows] == ["Dice (counts)", "AJI (contingency table)",
                                                "F1@0.5 (contingency table + assignment)", "AJI (per-instance masks)"]
    assert rows[0][2].strip() == "729 / 703"
    assert rows[1][6] == rows[3][6]  # both AJIs give the same (C, U)
    assert all(float(row[4]) > 0 for row in rows)


def test_validation_metrics_share_of_a_training_epoch_is_measured():
    from ece_lightning.bench.metrics import validation_share

    share = validation_share("synthetic", epochs=1)
    assert share.experiment == "demo" and share.validation_tiles == 16
    assert share.train_epoch_s > 0 and share.validation_metrics_s > 0


def test_perturbed_prediction_is_close_to_its_labels_but_not_equal():
    from ece_lightning.bench.metrics import perturbed_prediction, synthetic_map
    from ece_lightning.metrics.core import aji

    target = synthetic_map(size=300)
    pred = perturbed_prediction(target)
    assert 0.3 < aji(target, pred) < 0.95
