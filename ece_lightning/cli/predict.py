"""`ece-predict checkpoint=<ckpt> input=<image or slide> output=<dir> [key=value ...]`: run a trained model
over a large image tile by tile and write its objects (Parquet, QuPath GeoJSON), the stitched probability
map (segmentation) and a summary (``inference.engine.predict_slide``). Options: the packaged
``conf/predict.yaml``.

Bad input stops with one message naming the setting or file (exit status 2). An interrupted run continues
where it stopped when started again with the same command.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig, OmegaConf

from ..config import CONFIG_DIR
from ..errors import PredictError
from .common import user_errors

SUMMARY_KEYS = ("task", "shape", "level", "mpp", "objects", "objects_touching_block_margin", "tiles",
                "tiles_with_tissue", "wall_s", "megapixels_per_s", "peak_rss_mib", "device", "outputs")


def predict(cfg: DictConfig) -> dict:
    from ..inference.engine import PredictOptions, predict_slide
    from ..inference.predictors import load_predictor
    from ..inference.slide import open_image

    for key in ("checkpoint", "input", "output"):
        if OmegaConf.is_missing(cfg, key):
            raise PredictError(f"{key}= is required: ece-predict checkpoint=<run>/checkpoints/last.ckpt "
                               "input=<image or slide> output=<folder>")
    settings = OmegaConf.to_container(cfg, resolve=True)
    options = PredictOptions.from_config(settings)
    predictor = load_predictor(cfg.checkpoint, device=str(cfg.device), precision=str(cfg.precision),
                               segmentation=settings["segmentation"], detection=settings["detection"])
    with open_image(cfg.input, level=cfg.level, mpp=cfg.mpp, input_mpp=cfg.input_mpp) as source:
        return predict_slide(predictor, source, cfg.output, options, checkpoint=cfg.checkpoint)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    with user_errors("ece-predict"):
        summary = predict(cfg)
    if summary.get("skipped"):
        print(f"ece-predict: {cfg.output} already holds this prediction (resume=false to redo it)")
    print(json.dumps({k: summary.get(k) for k in SUMMARY_KEYS}, indent=1))


if __name__ == "__main__":
    main()
