"""A readable console: messages of third-party libraries that the user can do nothing about are dropped
(Lightning's advertising tips, its CPU-only hardware lines and the deprecation warnings its code triggers in
newer torch); everything that says something about the run stays."""

from __future__ import annotations

import logging
import warnings

_DROPPED_PREFIXES = ("💡 Tip:", "GPU available: False", "TPU available:", "HPU available:",
                     "`Trainer.fit` stopped: `max_epochs=")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_DROPPED_PREFIXES)


def quiet_third_party() -> None:
    """Install the filters (idempotent)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "pytorch_lightning.trainer.connectors.logger_connector.logger_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    # torch deprecates a pytree API that Lightning 2.x still calls; not ours to fix.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r".*_register_pytree_node.*deprecated")
