"""A tiny explicit registry: components register with a decorator and are looked up by name."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from medgan.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes or functions) registered with ``@registry.register("name")``.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"generator"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under ``name``; a duplicate name is a bug."""

        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorate

    def get(self, name: str) -> T:
        """Returns the item registered as ``name``; an unknown name raises ConfigError listing valid names."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
