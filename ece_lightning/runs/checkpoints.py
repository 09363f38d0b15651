"""Reading an ``ece-train`` checkpoint back: the file, its hyper-parameters (the module's config) and weights,
checked, for ``ece-eval`` and ``ece-predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def read_checkpoint(checkpoint: str | Path, error: type[Exception]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, hyper_parameters)`` of an ``ece-train`` checkpoint, whose model is a registered one; anything else
    raises ``error`` with a message naming the file and what is wrong."""
    from ..models import MODELS

    path = Path(checkpoint)
    if not path.is_file():
        raise error(f"checkpoint={path}: no such file (an ece-train run keeps them in <run>/checkpoints/)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as problem:
        raise error(f"checkpoint={path}: not a readable PyTorch checkpoint ({type(problem).__name__})") from None
    hparams = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not isinstance(hparams, dict) or "model" not in hparams or "state_dict" not in state:
        raise error(f"checkpoint={path}: not an ece-train checkpoint (no hyper_parameters.model / state_dict)")
    name = dict(hparams["model"]).get("name")
    if name not in MODELS:
        raise error(f"checkpoint={path}: its model {name!r} is not one of {', '.join(MODELS.names())}")
    return state, hparams
