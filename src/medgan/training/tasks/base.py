"""The contract between the training loop and a task, and the task registry.

A task owns its networks, optimizers, losses and phases; the loop only feeds batches, keeps the budget,
logs, snapshots, scores and checkpoints. A new GAN family (paired pix2pix, unpaired CycleGAN, a 3D GAN...) is
a new file in this package whose factory is registered in ``TASKS`` and returns an object that fulfils
:class:`Task`; the loop does not change and never looks at the task's name.

A registered task is a class: ``Task(config, data, device, rng)`` with the resolved run config, the loaded
training data (a SliceSet), the torch device and the task's random generator (checkpointed by the task).
The class also names its ``default_recipe`` (``medgan.config.recipe``) and validates the registered names its
config uses in ``check_config(config)``, which runs before any data is read or any file is written.
A class may also read its data its own way with a static ``load_data(config, progress) -> SliceSet`` (the
unpaired task reads two domains); without one the loop uses ``medgan.data.load_slices(config.data)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import nn

from medgan.data.spec import DataSpec
from medgan.registry import Registry
from medgan.training.batches import Batch

Scorer = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
"""``scorer(real, fake) -> {name: value}`` on [N, C, R, R] images in [-1, 1]; injected by the caller of the loop
(``medgan.metrics.training_score`` from the CLI)."""


@dataclass(frozen=True)
class ScoreRule:
    """Which score ranks checkpoints for ``best.pt``, and its direction."""

    key: str  # a key of the dict that Task.score returns, e.g. "fid"
    lower_is_better: bool = True

    def improves(self, value: float, best: float | None) -> bool:
        """True when ``value`` beats ``best`` (any value beats None)."""
        if best is None:
            return True
        return value < best if self.lower_is_better else value > best


class Task(Protocol):
    """What the loop needs from a task."""

    spec: DataSpec  # what the task's tensors mean (saved in every checkpoint)
    score_rule: ScoreRule | None  # what "best" means; None ranks nothing (best.pt is the final checkpoint)
    groups_by_class: bool  # ask the loop for class-grouped batches (minibatch-stddev groups of one class)
    nearest_domains: frozenset[str]  # aligned domains that are label maps (resampled nearest-neighbour)
    attributes: torch.Tensor | None  # standardized per-image attributes the batches should carry, or None
    default_recipe: str  # the medgan.config.recipe a run of this task starts from

    @staticmethod
    def check_config(config: Any) -> None:
        """Raises ConfigError for any registered name the config uses that does not exist (before any work)."""

    def set_horizon(self, steps: int) -> None:
        """The number of steps the run will make (re-estimated under a time budget); schedules follow it."""

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """All phases of one training step (0-based ``step``); returns scalar logs."""

    def grid(self) -> tuple[torch.Tensor, int]:
        """The sample grid for fixed inputs: images [N, C, R, R] in [-1, 1] and the number of columns."""

    def score(self, scorer: Scorer) -> dict[str, float]:
        """In-training scores of the inference model; raises MedganError when the data cannot be scored."""

    def prepare_inference(self) -> None:
        """Readies the inference model (e.g. BatchNorm standing statistics) before sampling or saving."""

    def inference_state(self) -> dict[str, Any]:
        """``{"kind": <medgan.inference kind>, ...}``: all that inference needs (no optimizer, no D)."""

    def modules(self) -> dict[str, nn.Module]:
        """Every module the task owns by name (trained ones and their EMA copies)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimizer states, counters, RNG states."""

    def load_state_dict(self, state: dict[str, Any], path: str) -> None:
        """Restores :meth:`state_dict`; raises CheckpointError (naming ``path``) when it does not fit."""


TASKS: Registry[Any] = Registry("task")
"""Training tasks, registered by name."""
