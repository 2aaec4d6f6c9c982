"""The registered noise-to-image tasks: ``unconditional`` (medgan's default task) and ``conditional``; their
machinery is ``NoiseToImageTask`` (``task``)."""

from __future__ import annotations

from pathlib import Path

import torch

from medgan.config import RunConfig
from medgan.data import SliceSet
from medgan.training.tasks.base import Capabilities, EvaluationRequest
from medgan.training.tasks.noise_to_image.config import TASK_NAMES, ConditionalOptions
from medgan.training.tasks.noise_to_image.task import NoiseToImageTask
from medgan.training.tasks.registry import register_task


class _Registered(NoiseToImageTask):
    """What ``medgan evaluate`` and ``medgan demo`` do with a noise-to-image run."""

    @classmethod
    def evaluate(cls, run_dir: str | Path, request: EvaluationRequest) -> str:
        """Its samples against real images: fidelity, diversity, memorization (and a membership audit)."""
        from medgan.training.tasks.noise_to_image.evaluation import evaluate_samples

        return evaluate_samples(run_dir, request)

    @classmethod
    def showcase(cls, run_dir: str | Path, progress: bool = True) -> list[str]:
        """Sixteen samples per class (conditional runs), and how to sample more; a 3D run on the synthetic cohort
        is evaluated against held-out subjects."""
        from medgan.training.tasks.noise_to_image.evaluation import class_grids, volume_showcase

        return volume_showcase(run_dir, progress) or class_grids(run_dir)


@register_task(TASK_NAMES[0], default=True)
class UnconditionalTask(_Registered):
    """G(z) -> image; D(image) -> logit."""

    def __init__(self, config: RunConfig, data: SliceSet, device: torch.device, rng: torch.Generator) -> None:
        super().__init__(config, data, device, rng, conditional=False)


@register_task(TASK_NAMES[1])
class ConditionalTask(_Registered):
    """G(z, class[, attributes]) -> image; D(image, class[, attributes]) -> logit with projection terms."""

    Options = ConditionalOptions
    capabilities = Capabilities(private=True, conditional=True, volumes=True)

    def __init__(self, config: RunConfig, data: SliceSet, device: torch.device, rng: torch.Generator) -> None:
        super().__init__(config, data, device, rng, conditional=True)
