"""medgan: generative adversarial networks for medical images.

The Python API (``medgan.train``, ``medgan.load``, ``medgan.evaluate``, ``medgan.compare`` and the types they
return) lives in
``medgan.api`` and is imported on first use, so ``import medgan`` stays light (no torch) and changes nothing in
the process. ``medgan.zoo.entries()`` lists the pretrained models shipped with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("Images", "Metrics", "Model", "Run", "compare", "evaluate", "load", "train")

if TYPE_CHECKING:  # pragma: no cover
    from medgan.api import Images, Metrics, Model, Run, compare, evaluate, load, train  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _API:
        from medgan import api

        return getattr(api, name)
    if name == "zoo":  # ``medgan.zoo.entries()`` without importing medgan.zoo first (it reads JSON only)
        import importlib

        return importlib.import_module("medgan.zoo")
    raise AttributeError(f"module 'medgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, "zoo"])


__all__ = ["__version__", *_API]
