"""`ece-train`: one training run, or a multirun sweep with `-m`, from the packaged ``conf/train.yaml``
(``ece_lightning.runs.training.train`` does the work)."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from ..config import CONFIG_DIR
from ..runs.state import remove_empty_run_dir
from .common import quiet_third_party, user_errors


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from ..runs.training import train

    quiet_third_party()
    torch.set_float32_matmul_precision("high")
    with user_errors("ece-train", cleanup=lambda: remove_empty_run_dir(Path(cfg.paths.output_dir))):
        metrics = train(cfg)
    return metrics.get("test/dice")


if __name__ == "__main__":
    main()
