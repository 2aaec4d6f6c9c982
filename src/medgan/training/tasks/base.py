"""The contract between the training loop and a task, and the task registry.

A task owns its networks, optimizers and losses, and runs its own phases; the loop only feeds batches,
keeps time, logs, snapshots and checkpoints. A new task (paired translation, unpaired CycleGAN, ...) is a
new class registered in ``TASKS`` that fulfils :class:`Task`; the loop does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from medgan.registry import Registry


@dataclass
class Batch:
    """One training batch.

    Args:
        images: [N, C, R, R] real images in [-1, 1] (already classically augmented).
        labels: [N] int64 class indices for conditional tasks, else None.
        attributes: [N, A] standardized continuous attributes for attribute-conditional tasks, else None.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    attributes: torch.Tensor | None = None


class Task(Protocol):
    """What the loop needs from a task."""

    def discriminator_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One discriminator update; returns scalar logs (e.g. ``{"loss_d": ...}``)."""

    def generator_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One generator update (and EMA update); returns scalar logs."""

    def end_step(self, step: int) -> None:
        """Per-step bookkeeping after all phases (LR schedules, annealing)."""

    def sample(self, noise: torch.Tensor, labels: torch.Tensor | None = None,
               attributes: torch.Tensor | None = None) -> torch.Tensor:
        """Images [N, C, R, R] in [-1, 1] from the inference generator (EMA where enabled) for given noise."""

    def prepare_inference(self, noise_generator: torch.Generator) -> None:
        """Readies the inference generator (e.g. BatchNorm standing statistics) before sampling or saving."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimizer states, RNG states."""

    def load_state_dict(self, state: dict[str, Any], path: str) -> None:
        """Restores :meth:`state_dict`; raises CheckpointError (naming ``path``) when it does not fit."""


TASKS: Registry = Registry("task")
