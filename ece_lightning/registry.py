"""The one way from a config entry to an object: a ``Registry`` per family (models, losses, tasks, dataset
sources and formats, post-processing methods, optimisers, schedulers).

A config names an entry with its ``name`` key (``model: {name: unet, depth: 4}``) and passes the other keys as
arguments; ``build`` looks the entry up and calls it. An unknown name and an unknown argument are a
``RegistryError`` that names the config key and the valid choices; range checks live in the entry itself (its
constructor), so they exist once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class RegistryError(ConfigError):
    """An unknown entry or argument of a registry family; the message names the key and the valid values."""


class Registry(Generic[T]):
    """Named factories of one family.

    Args:
        family: what the entries are (``model``, ``loss``...), for messages.
        key: the config key that names an entry (``model.name``), for messages.
        dotted_paths: also accept the dotted path of any class (``package.module.Class``) as a name, so a
            third-party class fits a config without being registered.
    """

    def __init__(self, family: str, key: str, dotted_paths: bool = False):
        self.family, self.key, self.dotted_paths = family, key, dotted_paths
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T] | None = None) -> Any:
        """Add ``factory`` under ``name``; without ``factory`` a decorator that registers what it decorates."""
        def add(entry: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add if factory is None else add(factory)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, Callable[..., T]]]:
        return [(name, self._entries[name]) for name in self.names()]

    def get(self, name: Any) -> Callable[..., T]:
        """The factory registered as ``name`` (or, with ``dotted_paths``, the class a dotted path names); a
        RegistryError listing the valid names otherwise."""
        if name in self._entries:
            return self._entries[name]
        if self.dotted_paths and isinstance(name, str) and "." in name:
            return _locate(name, self.key)
        paths = " (or the dotted path of a class)" if self.dotted_paths else ""
        raise RegistryError(f"{self.key}={name!r} is not registered; valid: {', '.join(self.names())}{paths}")

    __getitem__ = get

    def build(self, config: Mapping[str, Any] | str, /, **extra: Any) -> T:
        """The object of a config entry: ``config["name"]`` picks the factory, the other keys (and ``extra``,
        arguments the caller supplies) are its arguments."""
        options = {"name": config} if isinstance(config, str) else dict(config)
        return self.create(options.pop("name", None), options, **extra)

    def create(self, name: Any, options: Mapping[str, Any] | None = None, /, **extra: Any) -> T:
        """The entry ``name`` called with ``options`` and ``extra``; a key it does not take is a RegistryError
        naming it and the valid ones."""
        factory = self.get(name)
        check_arguments(factory, dict(options or {}), prefix=self.key.rsplit(".", 1)[0], supplied=tuple(extra))
        return factory(**{**(options or {}), **extra})


def check_arguments(factory: Callable[..., Any], options: Mapping[str, Any], prefix: str,
                    supplied: tuple[str, ...] = ()) -> None:
    """RegistryError for keys of ``options`` that ``factory`` has no parameter for (unless it takes ``**kwargs``);
    ``supplied`` are the arguments the caller passes itself (not config keys, so not listed as valid)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [name for name, p in parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
             and name not in supplied]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise RegistryError(f"unknown key(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; valid: "
                            f"{', '.join(valid)}")


def _locate(path: str, key: str) -> Any:
    """The object a dotted path names (``package.module.Class``)."""
    import importlib

    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise RegistryError(f"{key}={path!r}: no such class ({type(error).__name__}: {error})") from None
