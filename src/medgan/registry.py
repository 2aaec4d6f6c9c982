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
        self._default: str | None = None

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
        if self._default is None:
            raise ValueError(f"no default {self.kind} is registered")  # a bug: the package registers one
        return self._default

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
