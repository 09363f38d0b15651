"""Experiment loggers from the ``logger`` config group (registry ``LOGGERS``: each entry named by its key, e.g.
``logger.csv: {...}``), and closing W&B whatever happens."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.logger import DummyExperiment

from ..registry import Registry

log = logging.getLogger(__name__)


class TolerantWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` whose failures (no network, a full or read-only disk, the W&B service) never
    stop training: the first one is logged as a warning and W&B logging is off for the rest of the run
    (the CSV log and metrics.json are unaffected). Takes ``WandbLogger``'s arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.failure: str | None = None

    def _fail(self, during: str, error: BaseException) -> None:
        if self.failure is None:
            self.failure = f"{during}: {type(error).__name__}: {error}"
            log.warning("W&B logging failed (%s); W&B is off for the rest of this run, training goes on", self.failure)

    @property
    def experiment(self) -> Any:
        if self.failure is not None:
            return DummyExperiment()
        try:
            return WandbLogger.experiment.fget(self)
        except Exception as error:
            self._fail("starting the W&B run", error)
            return DummyExperiment()

    def _guarded(self, during: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        if self.failure is not None:
            return None
        try:
            return method(*args, **kwargs)
        except Exception as error:
            self._fail(during, error)
            return None

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("logging metrics", super().log_metrics, *args, **kwargs)

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("logging the config", super().log_hyperparams, *args, **kwargs)

    def log_image(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("logging an image", super().log_image, *args, **kwargs)

    def log_table(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("logging a table", super().log_table, *args, **kwargs)

    def after_save_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("logging a checkpoint", super().after_save_checkpoint, *args, **kwargs)

    def finalize(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("closing the W&B run", super().finalize, *args, **kwargs)


def wandb_has_credentials() -> bool:
    """True when W&B can log online without asking: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


LOGGERS: Registry[Logger] = Registry("logger", "logger.<entry>")


def build_loggers(logger_cfg: dict[str, Any] | None, tags: list[str]) -> list[Logger]:
    """Every entry of the ``logger`` group, each named by its key (``csv``, ``wandb``, ``tensorboard``); W&B's
    ``offline: auto`` is resolved here and ``tags`` are added to its run."""
    loggers = []
    for name, options in (logger_cfg or {}).items():
        options = dict(options or {})
        if LOGGERS.get(name) is TolerantWandbLogger:
            if options.get("offline") == "auto":
                offline = os.environ.get("WANDB_MODE") == "offline" or not wandb_has_credentials()
                options["offline"] = offline
                if offline:
                    log.info("W&B logs offline (no credentials found); sync later with `wandb sync`")
            options["tags"] = sorted(set(tags) | set(options.get("tags") or []))
        log.debug("logger %s", name)
        loggers.append(LOGGERS.create(name, options))
    return loggers


def finish_wandb(failed: bool) -> None:
    """Close the active W&B run (else the next job of a sweep logs into it)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        try:
            wandb.finish(exit_code=1 if failed else 0)
        except Exception as error:  # a logging failure must not hide the run's own outcome
            log.warning("wandb.finish failed: %s", error)



LOGGERS.register("csv", CSVLogger)
LOGGERS.register("wandb", TolerantWandbLogger)
LOGGERS.register("tensorboard", TensorBoardLogger)
