"""Data: synthetic generator, readers of native dataset formats, sparsifier and the DataModule."""
