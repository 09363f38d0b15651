"""The networks' side of tiled prediction: a trained ``ece-train`` checkpoint turned into a predictor of RGB
uint8 tiles (segmentation: a foreground-probability map per tile; detection: scored boxes per tile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PredictError

PRECISIONS = ("32", "bf16")


class TilePredictor:
    """Runs a network on batches of RGB uint8 tiles.

    Args:
        net: maps (B, 3, T, T) float images in [0, 1] to its outputs.
        multiple: the input multiple the network needs (tile sides and origins are multiples of it).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``32`` or ``bf16`` (autocast).
    """

    task = ""

    def __init__(self, net: torch.nn.Module, multiple: int, device: str = "auto", precision: str = "32"):
        precision = str(precision).removesuffix("-mixed")
        if precision not in PRECISIONS:
            raise PredictError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise PredictError(f"device={device!r} is not a torch device (auto, cpu, cuda, cuda:N)") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise PredictError(f"device={device!r} but CUDA is not available here; use device=cpu")
        self.net = net.to(self.device).eval()
        self.multiple, self.precision = int(multiple), precision

    def forward(self, tiles: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(tiles).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.precision == "bf16"):
            return self.net(images).float()

    def settings(self) -> dict[str, Any]:
        return {"task": self.task, "multiple": self.multiple, "precision": self.precision}


class SegmentationTiles(TilePredictor):
    """Foreground probability (1 - P(background)) per pixel; objects from ``postprocess`` (see
    ``postprocess.segmentation.foreground_to_instances``) at probability >= ``threshold``."""

    task = "segmentation"

    def __init__(self, net: torch.nn.Module, multiple: int, postprocess: dict[str, Any] | None = None,
                 threshold: float = 0.5, **kwargs: Any):
        super().__init__(net, multiple, **kwargs)
        if not 0.0 < threshold < 1.0:
            raise PredictError(f"segmentation.threshold={threshold} must lie in (0, 1) (foreground probability)")
        from ..postprocess.segmentation import check_postprocess
        from .tta import TransformAverage

        self.threshold = float(threshold)
        try:
            self.postprocess = check_postprocess(dict(postprocess or {}), prefix="segmentation.postprocess")
        except ValueError as error:
            raise PredictError(str(error)) from None
        if self.postprocess.get("tta", "none") != "none":
            self.net = TransformAverage(self.net, self.postprocess["tta"]).eval()
        if "threshold" in self.postprocess:  # load_predictor resolves it; here it would be a second, ignored one
            raise PredictError("segmentation.postprocess.threshold: pass the foreground threshold as "
                               "segmentation.threshold")

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        logits = self.forward(tiles)
        foreground = 1.0 - torch.softmax(logits, dim=1)[:, 0] if logits.shape[1] > 1 else torch.sigmoid(logits[:, 0])
        return foreground.to(torch.float16).cpu().numpy()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "postprocess": self.postprocess, "threshold": self.threshold}


class DetectionTiles(TilePredictor):
    """Boxes (x0, y0, x1, y1, score) in tile pixels of every grid cell scoring >= ``score_threshold``; NMS
    (``nms_iou``) runs after stitching."""

    task = "detection"

    def __init__(self, net: torch.nn.Module, stride: int, anchor: float, score_threshold: float = 0.5,
                 nms_iou: float = 0.2, fixed_box_size: float | None = None, **kwargs: Any):
        super().__init__(net, stride, **kwargs)
        self.fixed_box_size = None if fixed_box_size is None else float(fixed_box_size)
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= nms_iou <= 1.0:
            raise PredictError(f"detection.score_threshold={score_threshold} and detection.nms_iou={nms_iou} must lie "
                               "in [0, 1]")
        self.stride, self.anchor = int(stride), float(anchor)
        self.score_threshold, self.nms_iou = float(score_threshold), float(nms_iou)

    def __call__(self, tiles: np.ndarray) -> list[np.ndarray]:
        from ..postprocess.detection import decode_grid

        boxes, scores = decode_grid(self.forward(tiles), self.stride, self.anchor, box_side=self.fixed_box_size)
        out = []
        for tile_boxes, tile_scores in zip(boxes, scores):
            keep = tile_scores >= self.score_threshold
            out.append(torch.cat([tile_boxes[keep], tile_scores[keep][:, None]], 1).cpu().numpy().astype(np.float32))
        return out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "anchor": self.anchor, "score_threshold": self.score_threshold,
                "nms_iou": self.nms_iou, **({"fixed_box_size": self.fixed_box_size} if self.fixed_box_size else {})}


def load_predictor(checkpoint: str | Path, device: str = "auto", precision: str = "32",
                   segmentation: dict[str, Any] | None = None, detection: dict[str, Any] | None = None
                   ) -> TilePredictor:
    """The tile predictor of an ``ece-train`` checkpoint (segmentation or detection, told by its model).

    ``segmentation``: ``threshold`` (foreground probability; None: the run's own ``postprocess.threshold``, 0.5
    if it has none) and ``postprocess`` (entries override the run's own); ``detection``: ``score_threshold`` and ``nms_iou`` (None: the run's own; a run's ``auto``
    threshold is the one its last validation chose).
    """
    from ..models import MODELS
    from ..runs.checkpoints import read_checkpoint

    state, hparams = read_checkpoint(checkpoint, PredictError)
    net = MODELS.build(hparams["model"])
    weights = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(weights)
    run_post = dict(hparams.get("postprocess") or {})
    if getattr(net, "task", None) == "detection":
        given = {k: v for k, v in (detection or {}).items() if v is not None}
        run_threshold = run_post.get("score_threshold", 0.5)
        if run_threshold == "auto":  # chosen on the run's validation split, kept in the checkpoint (0.5 if never)
            from ..postprocess.detection import chosen_score_threshold

            run_threshold = chosen_score_threshold(state["state_dict"].get("chosen_score_threshold"), 0.5)
        options = {"score_threshold": run_threshold, "nms_iou": run_post.get("nms_iou", 0.2), **given}
        return DetectionTiles(net, net.stride, net.anchor, score_threshold=options["score_threshold"],
                              nms_iou=options["nms_iou"], fixed_box_size=hparams.get("fixed_box_size"), device=device,
                              precision=precision)
    from ..postprocess.segmentation import split_threshold

    segmentation = dict(segmentation or {})
    merged = {**run_post, **(segmentation.get("postprocess") or {})}
    run_threshold, postprocess = split_threshold(merged)
    if "tta" in merged:  # how the probabilities are made, not how they are cut: the predictor applies it
        postprocess["tta"] = merged["tta"]
    threshold = segmentation.get("threshold")
    return SegmentationTiles(net, 2 ** net.depth, postprocess=postprocess,
                             threshold=run_threshold if threshold is None else threshold, device=device,
                             precision=precision)
