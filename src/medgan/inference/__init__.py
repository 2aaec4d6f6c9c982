"""Inference models: what sampling and translation load from a checkpoint, by kind.

A task's ``inference_state()`` is ``{"kind": <name>, ...}``; ``load_model`` looks the kind up in ``INFERENCE``
and builds the model from the run's config, data spec and that state. Nothing here imports training code:
an inference model needs weights and the data spec only.
"""

from medgan.inference import noise, translate  # noqa: F401  (register "noise-to-image", "image-to-image")
from medgan.inference.noise import NoiseToImage
from medgan.inference.registry import INFERENCE, load_model
from medgan.inference.translate import Direction, Translator

__all__ = ["Direction", "INFERENCE", "NoiseToImage", "Translator", "load_model"]
