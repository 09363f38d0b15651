"""What the command-line tools share: a user's mistake ends as one line on stderr and exit status 2, and a
readable console (messages of third-party libraries that the user can do nothing about are dropped: Lightning's
advertising tips, its CPU-only hardware lines, deprecation warnings its code triggers in newer torch)."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import ConfigError, DatasetError, PredictError, SlideError

#: the errors that are the user's to fix: their message says what and where
USER_ERRORS = (ConfigError, DatasetError, PredictError, SlideError)


@contextmanager
def user_errors(command: str, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn a user error raised in the block into ``<command>: <message>`` on stderr and exit status 2 (after
    ``cleanup``); anything else is a bug and keeps its traceback."""
    try:
        yield
    except USER_ERRORS as error:
        print(f"{command}: {error}", file=sys.stderr)
        if cleanup is not None:
            cleanup()
        raise SystemExit(2) from None

_DROPPED_PREFIXES = ("💡 Tip:", "GPU available: False", "TPU available:", "HPU available:",
                     "`Trainer.fit` stopped: `max_epochs=", "Loading `train_dataloader` to estimate number of stepping")


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
