"""Post-processing of network outputs, shared by training-time evaluation, ``ece-eval`` and ``ece-predict``:
segmentation logits to foreground and instances (``segmentation``), detection grids to boxes (``detection``)."""

from .detection import Detections, decode_grid, detect
from .segmentation import INSTANCE_METHODS, foreground_from_logits, foreground_to_instances

__all__ = ["INSTANCE_METHODS", "Detections", "decode_grid", "detect", "foreground_from_logits",
           "foreground_to_instances"]
