"""`ece-eval` as a user runs it: a run's own checkpoint on its own test split gives exactly its metrics.json test
values; other splits and another dataset; bad input is named and leaves nothing behind."""

import json

import pandas as pd
import pytest
from PIL import Image

from ..data import native
from .helpers import run_cli

# batch norm: ece-eval must also reproduce a model whose evaluation uses running statistics
SEGMENTATION = ["trainer.max_epochs=6", "model.base_channels=8", "model.depth=3", "model.norm=batch",
                "scheduler.name=onecycle", "+scheduler.warmup=0.2", "dataset.image_size=96", "dataset.num_train=64",
                "dataset.num_val=4", "dataset.num_test=6", "dataset.batch_size=8", "optimizer.lr=3e-3", "logger=none",
                "task.postprocess.method=watershed"]
DETECTION = ["experiment=demo_detection", "trainer.max_epochs=10", "dataset.num_train=48", "dataset.num_val=4",
             "dataset.num_test=6", "logger=none", "sparsity=0.5",
             "task.postprocess.score_threshold=auto"]  # chosen on the sparse validation split, kept in the checkpoint


def _train(root, args):
    result = run_cli("ece-train", *args, f"hydra.run.dir={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("eval") / "segmentation", SEGMENTATION)


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("eval") / "detection", DETECTION)


def _evaluate(run, out, *args):
    result = run_cli("ece-eval", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", f"output={out}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text()), pd.read_csv(out / "per_image.csv"), result.stdout


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_own_test_split_gives_exactly_the_runs_test_metrics(task, segmentation_run, detection_run, tmp_path):
    run = segmentation_run if task == "segmentation" else detection_run
    trained = json.loads((run / "metrics.json").read_text())
    metrics, per_image, stdout = _evaluate(run, tmp_path / "eval")
    tested = {k: v for k, v in trained.items() if k.startswith("test/")}
    assert tested and {k: metrics[k] for k in tested} == tested  # exactly, not approximately
    main = "test/dice" if task == "segmentation" else "test/f1"
    assert trained[main] > 0.2  # a model that found something, or the comparison would say little
    assert metrics["dataset"] == metrics["trained_on"] == "synthetic" and metrics["split"] == "test"
    assert metrics["task"] == task and metrics["loss"] == trained["loss"] and metrics["seed"] == trained["seed"]
    assert len(per_image) == 6 and list(per_image["image"]) == [f"test-{i}" for i in range(6)]
    assert per_image["true_objects"].sum() == trained["objects/test_total"]
    if task == "segmentation":
        # Each synthetic test image is one tile, so the per-image Dice and AJI average to the test values.
        assert per_image["dice"].mean() == pytest.approx(metrics["test/dice"], abs=1e-6)
        assert per_image["aji"].mean() == pytest.approx(metrics["test/aji"], abs=1e-6)
    else:
        counts = per_image[["tp", "fp", "fn"]].sum()
        assert 2 * counts.tp / (2 * counts.tp + counts.fp + counts.fn) == pytest.approx(metrics["test/f1"], abs=1e-6)
        assert (per_image["predicted_objects"] == per_image["tp"] + per_image["fp"]).all()
        # the threshold the last validation chose is the one the test and ece-eval (and ece-predict) use
        from ece_lightning.analysis.thresholds import DEFAULT_THRESHOLDS
        from ece_lightning.inference.predictors import load_predictor

        chosen = trained["score_threshold"]
        assert chosen in DEFAULT_THRESHOLDS and metrics["postprocess"]["score_threshold"] == chosen
        assert load_predictor(run / "checkpoints" / "last.ckpt", device="cpu").score_threshold == chosen
    picture = Image.open(tmp_path / "eval" / "predictions.png")
    assert picture.size[0] > 4 * 96 and f"{main} |" in stdout


def test_other_splits_and_every_split(segmentation_run, tmp_path):
    val, val_images, _ = _evaluate(segmentation_run, tmp_path / "val", "split=val", "pictures=0")
    everything, all_images, _ = _evaluate(segmentation_run, tmp_path / "all", "split=all", "pictures=0")
    assert len(val_images) == 4 and val["split"] == "val" and not (tmp_path / "val" / "predictions.png").exists()
    assert len(all_images) == 64 + 4 + 6 and set(val_images["image"]) <= set(all_images["image"])
    assert 0 < val["test/dice"] <= 1 and 0 < everything["test/dice"] <= 1


def test_post_processing_can_be_changed_at_evaluation(segmentation_run, tmp_path):
    trained, _, _ = _evaluate(segmentation_run, tmp_path / "trained", "pictures=0")
    merged, _, _ = _evaluate(segmentation_run, tmp_path / "merged", "pictures=0", "+postprocess.method=components",
                             "+postprocess.min_size=1000")
    assert trained["postprocess"]["min_size"] != 1000 and merged["postprocess"]["min_size"] == 1000
    assert merged["test/dice"] == trained["test/dice"]  # the foreground is the network's, only instances change
    assert merged["test/aji"] < trained["test/aji"]  # no synthetic nucleus has 1000 pixels: every object dropped


def test_the_foreground_threshold_can_be_changed_at_evaluation(segmentation_run, tmp_path):
    trained, _, _ = _evaluate(segmentation_run, tmp_path / "trained", "pictures=0")
    strict, _, _ = _evaluate(segmentation_run, tmp_path / "strict", "pictures=0", "+postprocess.threshold=0.9")
    assert "threshold" not in trained["postprocess"] and strict["postprocess"]["threshold"] == 0.9
    assert strict["test/fg_ratio"] < trained["test/fg_ratio"]  # fewer pixels above 0.9 than above 0.5
    assert strict["test/dice"] != trained["test/dice"]


def test_test_time_augmentation_at_evaluation(segmentation_run, tmp_path):
    """``+postprocess.tta=dihedral``: the same model on probabilities averaged over 8 flipped / rotated copies, in
    its own default output folder, its setting recorded."""
    trained, _, _ = _evaluate(segmentation_run, tmp_path / "trained", "pictures=0")
    result = run_cli("ece-eval", f"checkpoint={segmentation_run / 'checkpoints' / 'last.ckpt'}", "pictures=1",
                     "+postprocess.tta=dihedral", f"paths.log_dir={tmp_path / 'logs'}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "logs" / "eval" / segmentation_run.name / "synthetic-test-ttadihedral"
    averaged = json.loads((out / "metrics.json").read_text())
    assert averaged["postprocess"]["tta"] == "dihedral" and "tta" not in trained["postprocess"]
    assert (out / "predictions.png").is_file()
    # an average of the model's own answers: close to them, but not the same numbers
    assert averaged["test/dice"] != trained["test/dice"]
    assert abs(averaged["test/dice"] - trained["test/dice"]) < 0.05


def test_another_dataset_than_the_training_one(segmentation_run, tmp_path):
    """A synthetic-trained model evaluated on a dataset in a native format (CPM-15's layout, fixture files)."""
    raw = native.write_cpm15_miccai(tmp_path / "raw", count=8)
    metrics, per_image, _ = _evaluate(segmentation_run, tmp_path / "cross", "dataset=cpm15", f"dataset.root={raw}",
                                      f"paths.cache_dir={tmp_path / 'cache'}", "split=all")
    assert metrics["dataset"] == "cpm15" and metrics["trained_on"] == "synthetic"
    assert sorted(per_image["image"]) == [f"image{i:02d}" for i in range(1, 9)]
    assert 0 <= metrics["test/dice"] <= 1 and per_image["true_objects"].gt(0).all()


@pytest.mark.data("cpm15")
def test_on_the_real_cpm15_test_split(segmentation_run, tmp_path):
    metrics, per_image, _ = _evaluate(segmentation_run, tmp_path / "cpm15", "dataset=cpm15",
                                      f"paths.cache_dir={tmp_path / 'cache'}")
    assert metrics["dataset"] == "cpm15" and len(per_image) == 4  # the recipe's 4 test images
    assert per_image["tiles"].min() >= 1 and 0 <= metrics["test/aji"] <= 1


@pytest.mark.parametrize("args, message", [
    (["checkpoint=nowhere.ckpt"], "checkpoint=nowhere.ckpt: no such file"),
    (["checkpoint={not_a_checkpoint}"], "not a readable PyTorch checkpoint"),
    (["split=holdout"], "split='holdout' must be one of test, val, train, all"),
    (["dataset=cpm15", "dataset.root={nowhere}"], "dataset folder not found"),
    (["dataset=crchisto", "dataset.root={points}"], "cannot train or evaluate segmentation"),
    (["batch_size=0"], "batch_size=0 must be an integer >= 1"),
    (["+postprocess.min_distance=-1"], "postprocess.min_distance=-1 must be an integer >= 0"),
    (["+postprocess.markers=3"], "postprocess.markers"),
    (["+postprocess.threshold=1.5"], "postprocess.threshold=1.5 must be a number in (0, 1)"),
    (["+postprocess.tta=rot45"], "postprocess.tta='rot45' is not one of none, flips, dihedral"),
])
def test_bad_input_is_named_and_nothing_is_written(segmentation_run, tmp_path, args, message):
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("not a checkpoint")
    points = native.write_crchisto(tmp_path / "crc", count=5)
    given = {"checkpoint": f"checkpoint={segmentation_run / 'checkpoints' / 'last.ckpt'}"}
    for arg in args:
        given[arg.split("=")[0]] = arg.format(not_a_checkpoint=not_a_checkpoint, nowhere=tmp_path / "nowhere",
                                              points=points)
    out = tmp_path / "out"
    result = run_cli("ece-eval", *given.values(), f"output={out}", f"paths.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert message in result.stderr
    assert not out.exists()


def test_detection_on_labels_that_are_not_exhaustive_draws_recall_against_count(detection_run, tmp_path):
    metrics, _, _ = _evaluate(detection_run, tmp_path / "eval", "dataset=synthetic", "dataset.num_test=3",
                              "dataset.exhaustive_test=false")
    assert set(metrics) & {"test/exclusive_recall", "test/count_ratio"} == {"test/exclusive_recall", "test/count_ratio"}
    assert "test/f1" not in metrics
    curve = pd.read_csv(tmp_path / "eval" / "recall_vs_count.csv")
    row = curve.loc[(curve["threshold"] - metrics["postprocess"]["score_threshold"]).abs().idxmin()]
    assert row["exclusive_recall"] == pytest.approx(metrics["test/exclusive_recall"])
    assert Image.open(tmp_path / "eval" / "recall_vs_count.png").size[0] > 300


def test_an_auto_threshold_cannot_be_chosen_at_evaluation(detection_run, tmp_path):
    out = tmp_path / "out"
    result = run_cli("ece-eval", f"checkpoint={detection_run / 'checkpoints' / 'last.ckpt'}", f"output={out}",
                     "+postprocess.score_threshold=auto")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "postprocess.score_threshold=auto is chosen while training" in result.stderr
    assert not out.exists()


def test_post_processing_overrides_get_their_own_default_folder():
    from ece_lightning.runs.evaluation import _postprocess_suffix

    assert _postprocess_suffix(None) == "" and _postprocess_suffix({}) == ""
    assert _postprocess_suffix({"min_size": 20, "min_distance": 10}) == "-min_distance10-min_size20"
