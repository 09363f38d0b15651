"""Instance-map helpers shared by the data, metrics and post-processing code."""

from __future__ import annotations

import numpy as np


def relabel_sequential(instances: np.ndarray) -> np.ndarray:
    """The instance map with its labels renumbered 1..N in increasing order (int32); 0 stays 0."""
    instances = np.asarray(instances)
    labels, inverse = np.unique(instances, return_inverse=True)
    if labels.size and labels[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(instances.shape).astype(np.int32)
