"""Instance-map helpers shared by the data, metrics and post-processing code."""

from __future__ import annotations

import numpy as np


def relabel_sequential(instances: np.ndarray) -> np.ndarray:
    """The instance map with its labels renumbered 1..N in increasing order (int32); 0 stays 0."""
    instances = np.asarray(instances)
    if instances.size and np.issubdtype(instances.dtype, np.integer):
        low, high = int(instances.min()), int(instances.max())
        if low >= 0 and high <= max(4 * instances.size, 1 << 16):
            # A lookup table over the label range: two linear passes instead of sorting every pixel.
            present = np.bincount(instances.ravel(), minlength=1) > 0
            present[0] = False
            lookup = np.cumsum(present, dtype=np.int64).astype(np.int32)
            return lookup[instances]
    labels, inverse = np.unique(instances, return_inverse=True)
    if labels.size and labels[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(instances.shape).astype(np.int32)
