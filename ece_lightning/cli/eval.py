"""`ece-eval checkpoint=<ckpt> [dataset=<name>] [dataset.root=<dir>] [split=test|val|train|all] [output=<dir>]`:
evaluate a trained checkpoint on a dataset split, its own or another dataset's (``runs.evaluation``); writes
``metrics.json`` (the ``test/*`` keys of a training run), ``per_image.csv`` and ``predictions.png``. Options: the
packaged ``conf/eval.yaml``. A bad checkpoint, config or dataset stops with one message (exit status 2) and
writes nothing."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from ..config import CONFIG_DIR
from ..errors import ConfigError
from .common import quiet_third_party, user_errors


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    from ..analysis.tables import markdown
    from ..runs.evaluation import evaluate_checkpoint

    quiet_third_party()
    with user_errors("ece-eval"):
        if OmegaConf.is_missing(cfg, "checkpoint"):
            raise ConfigError("checkpoint= is required: ece-eval checkpoint=<run>/checkpoints/last.ckpt [dataset=<name>]")
        output, evaluation = evaluate_checkpoint(cfg)
    rows = [[key, value] for key, value in evaluation.metrics.items()]
    print(markdown(["metric", "value"], rows))
    print(f"{len(evaluation.per_image)} images -> {output}/metrics.json, per_image.csv, predictions.png")


if __name__ == "__main__":
    main()
