"""Tiled prediction of large images and whole slides (``ece-predict``): image sources (``slide``), the tile and
block geometry (``tiling``), predictors from checkpoints (``predictors``), stitching (``stitching``), the engine
(``engine``) and the object tables it streams (``export``). Post-processing of network outputs, shared with
training and evaluation, lives in ``ece_lightning.postprocess``."""
