"""Experiment loggers from the ``logger`` config group, and closing them whatever happens."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def wandb_has_credentials() -> bool:
    """True when W&B can log online without asking: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def build_loggers(logger_cfg: DictConfig | None, tags: list[str]) -> list[Any]:
    """Instantiate every entry of the ``logger`` group; W&B's ``offline: auto`` is resolved here."""
    loggers = []
    for name, entry in (logger_cfg or {}).items():
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            continue
        options: dict[str, Any] = {}
        if entry._target_.endswith("WandbLogger"):
            if entry.get("offline") == "auto":
                offline = os.environ.get("WANDB_MODE") == "offline" or not wandb_has_credentials()
                options["offline"] = offline
                if offline:
                    log.info("W&B logs offline (no credentials found); sync later with `wandb sync`")
            options["tags"] = sorted(set(tags) | set(entry.get("tags") or []))
        log.debug("logger %s", name)
        loggers.append(hydra.utils.instantiate(entry, **options))
    return loggers


def finish_wandb(failed: bool) -> None:
    """Close the active W&B run (else the next job of a sweep logs into it)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        try:
            wandb.finish(exit_code=1 if failed else 0)
        except Exception as error:  # a logging failure must not hide the run's own outcome
            log.warning("wandb.finish failed: %s", error)

