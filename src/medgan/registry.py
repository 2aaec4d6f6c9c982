"""A tiny explicit registry: components register with a decorator and are looked up by name.

A registry may be given a ``load`` function that imports the modules registering its built-in entries; it runs
once, at the first lookup (not at registration), so a package can declare a registry without importing what fills
it (``medgan --help`` lists names without importing torch).
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Iterator, TypeVar

from medgan.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes or functions) registered with ``@registry.register("name")``.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"generator"``).
        load: imports the modules that register the built-in entries; called once, before the first lookup.
    """

    def __init__(self, kind: str, load: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._default: str | None = None
        self._load = load
        self._loading = threading.RLock()  # another thread's first lookup waits for the load to finish
        self._complete = load is None

    def _loaded(self) -> dict[str, T]:
        """The entries, after the built-in ones were loaded (once; a lookup while loading, from the loading
        thread, sees those so far)."""
        if not self._complete:
            with self._loading:  # another thread waits here until the load is done
                if self._load is not None:
                    load, self._load = self._load, None
                    try:
                        load()
                    except BaseException:
                        self._load = load  # a failed import is retried (and raises again) at the next lookup
                        raise
                    self._complete = True
        return self._items

    def register(self, name: str, default: bool = False) -> Callable[[T], T]:
        """Decorator that registers its target under ``name`` (``default``: the one used when none is named); a
        duplicate name or a second default is a bug."""

        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if default and self._default is not None:
                raise ValueError(f"{self.kind} {name!r} and {self._default!r} both claim to be the default")
            self._items[name] = item
            if default:
                self._default = name
            return item

        return decorate

    @property
    def default(self) -> str:
        """The name registered with ``default=True``."""
        self._loaded()
        if self._default is None:
            raise ValueError(f"no default {self.kind} is registered")  # a bug: the package registers one
        return self._default

    def get(self, name: str) -> T:
        """Returns the item registered as ``name``; an unknown name raises ConfigError listing valid names."""
        try:
            return self._loaded()[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
