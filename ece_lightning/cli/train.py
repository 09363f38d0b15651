"""`ece-train`: one training run, or a multirun sweep with `-m`, from the packaged ``conf/train.yaml``
(``ece_lightning.runs.training.train`` does the work)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from ..config import CONFIG_DIR
from ..errors import ConfigError, DatasetError
from ..runs.state import remove_empty_run_dir
from .quiet import quiet_third_party


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from ..runs.training import train

    quiet_third_party()
    torch.set_float32_matmul_precision("high")
    try:
        metrics = train(cfg)
    except (ConfigError, DatasetError) as error:
        print(f"ece-train: {error}", file=sys.stderr)
        remove_empty_run_dir(Path(cfg.paths.output_dir))
        raise SystemExit(2) from None
    return metrics.get("test/dice")


if __name__ == "__main__":
    main()
