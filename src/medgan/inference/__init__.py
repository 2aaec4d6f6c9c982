"""Inference models: what sampling and translation load from a checkpoint, by kind.

A task's ``inference_state()`` is ``{"kind": <name>, ...}``; ``load_model`` looks the kind up in ``INFERENCE``
and builds the model from the run's config, data spec and that state. Nothing here imports training code:
an inference model needs weights and the data spec only.
"""

from medgan.inference import noise  # noqa: F401  (registers "noise-to-image")
from medgan.inference.registry import INFERENCE, load_model
from medgan.inference.noise import NoiseToImage

__all__ = ["INFERENCE", "NoiseToImage", "load_model"]
