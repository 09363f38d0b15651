"""Sparse-shot annotations: keep a seeded random fraction of whole object instances per image."""

from __future__ import annotations

import numpy as np


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` as a float, or raise a ValueError that says what is allowed."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(sparsity, bool) or not 0.0 < value <= 1.0:
        raise ValueError(
            f"sparsity={sparsity!r} is out of range: it must lie in (0, 1], the fraction of annotated "
            "object instances kept (1.0 = exhaustive)"
        )
    return value


def kept_instance_count(num_instances: int, sparsity: float) -> int:
    """How many of ``num_instances`` objects survive: round-half-up of ``sparsity * num_instances``."""
    return int(np.floor(check_sparsity(sparsity) * num_instances + 0.5))


def sparsify_instances(instances: np.ndarray, sparsity: float, seed: int, image_id: int) -> np.ndarray:
    """Keep a random fraction ``sparsity`` of the instances of one image; the rest become 0.

    Objects are removed whole, never partially. The choice depends only on ``(seed, image_id)`` and
    the image's instance labels, and it is nested: every object kept at a lower sparsity is also kept
    at a higher one (one random ranking of the objects per image, truncated), so sparsity curves
    compare annotation sets that grow, not unrelated draws.

    Args:
        instances: (H, W) integer instance map, 0 = background.
        sparsity: fraction in (0, 1] of instances to keep; 1.0 returns an unchanged copy.
        seed: seed of the sparse annotation set (the same for every image of a dataset).
        image_id: stable identifier of the image within its dataset (e.g. its index).
    """
    check_sparsity(sparsity)
    labels = np.unique(instances)
    labels = labels[labels != 0]
    keep = kept_instance_count(len(labels), sparsity)
    if keep == len(labels):
        return instances.copy()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(image_id), 0x5BA125E]))
    ranking = labels[rng.permutation(len(labels))]
    return np.where(np.isin(instances, ranking[:keep]), instances, 0).astype(instances.dtype)
