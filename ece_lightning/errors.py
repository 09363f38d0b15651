"""The errors a user meets: each message names the config key or file at fault and what would be valid.
The command-line tools turn them into one line on stderr and exit status 2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names each offending key. One error may
    hold several problems (``problems``), listed one per line."""

    def __init__(self, *problems: str, listing: bool = False):
        self.problems = [str(p) for p in problems]
        self.listing = listing or len(self.problems) > 1
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.listing:
            return self.problems[0] if self.problems else ""
        return "invalid config:\n  - " + "\n  - ".join(self.problems)


class DatasetError(ValueError):
    """A problem with the user's dataset files; the message names the file and what was expected."""


_LEADING_KEY = re.compile(r"^[A-Za-z_][\w.]*=")


@contextmanager
def config_key(prefix: str) -> Iterator[None]:
    """Turn a ValueError or TypeError raised while building the config group ``prefix`` into a ConfigError
    whose message starts with the full key (``depth=6 ...`` from the model becomes ``model.depth=6 ...``).
    A ConfigError already names full keys and passes unchanged (as does a DatasetError)."""
    try:
        yield
    except (ConfigError, DatasetError):
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(_with_prefix(prefix, str(error))) from None


def _with_prefix(prefix: str, message: str) -> str:
    if message.startswith(f"{prefix}.") or message.startswith("unknown key(s) "):
        return message
    return f"{prefix}.{message}" if _LEADING_KEY.match(message) else f"{prefix}: {message}"


class PredictError(ValueError):
    """A prediction that cannot run as asked; the message says which setting or file and what is valid."""


class SlideError(ValueError):
    """An input image that cannot be read as asked; the message names the file and what would be valid."""
