"""Inference helpers: prediction post-processing (tiled whole-slide prediction comes later)."""
