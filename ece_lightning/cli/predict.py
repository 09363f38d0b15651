"""`ece-predict checkpoint=<ckpt> input=<image or slide> output=<dir> [key=value ...]`: run a trained model
over a large image tile by tile and write its objects (Parquet, QuPath GeoJSON), the stitched probability
map (segmentation) and a summary. Options: ``conf/predict.yaml``.

Bad input stops with one message naming the setting or file (exit status 2). An interrupted run continues
where it stopped when started again with the same command.
"""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from ..config import CONFIG_DIR
from ..inference.slide import SlideError, open_image
from ..inference.tiled import PredictError, PredictOptions, load_predictor, predict_slide


def options_from_config(cfg: DictConfig) -> PredictOptions:
    geojson = cfg.geojson
    return PredictOptions(
        tile=int(cfg.tile), overlap=int(cfg.overlap), block_tiles=int(cfg.block_tiles), margin=int(cfg.margin),
        batch_size=int(cfg.batch_size), tissue=cfg.tissue, polygons=bool(cfg.segmentation.polygons),
        geojson=bool(geojson.enabled), geojson_gzip=bool(geojson.gzip), geometry=geojson.geometry,
        class_name=str(geojson.class_name), colour=tuple(int(c) for c in geojson.colour), parquet=bool(cfg.parquet),
        probability_map=bool(cfg.probability_map), resume=bool(cfg.resume), keep_parts=bool(cfg.keep_parts),
        progress=bool(cfg.progress))


def predict(cfg: DictConfig) -> dict:
    for key in ("checkpoint", "input", "output"):
        if OmegaConf.is_missing(cfg, key):
            raise PredictError(f"{key}= is required: ece-predict checkpoint=<run>/checkpoints/last.ckpt "
                               "input=<image or slide> output=<folder>")
    options = options_from_config(cfg)
    predictor = load_predictor(
        cfg.checkpoint, device=str(cfg.device), precision=str(cfg.precision),
        threshold=float(cfg.segmentation.threshold),
        postprocess=OmegaConf.to_container(cfg.segmentation.postprocess, resolve=True),
        score_threshold=cfg.detection.score_threshold, nms_iou=cfg.detection.nms_iou)
    with open_image(cfg.input, level=cfg.level, mpp=cfg.mpp, input_mpp=cfg.input_mpp) as source:
        return predict_slide(predictor, source, cfg.output, options, checkpoint=cfg.checkpoint)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        summary = predict(cfg)
    except (PredictError, SlideError) as error:
        print(f"ece-predict: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if summary.get("skipped"):
        print(f"ece-predict: {cfg.output} already holds this prediction (resume=false to redo it)")
    keys = ("task", "shape", "level", "mpp", "objects", "objects_touching_block_margin", "tiles", "tiles_with_tissue",
            "wall_s", "megapixels_per_s", "peak_rss_mib", "device", "outputs")
    print(json.dumps({k: summary.get(k) for k in keys}, indent=1))


if __name__ == "__main__":
    main()
