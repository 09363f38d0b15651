"""Readers of native dataset formats (one module per format)."""
