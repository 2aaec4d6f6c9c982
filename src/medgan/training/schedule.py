"""Learning-rate schedules on an explicit horizon, shared by every task.

The horizon is the number of steps the run will make: ``train.steps``, or, under a time budget, the steps
the budget allows at the measured speed (the loop re-estimates it and tells the task). Decay and annealing
follow it, so they work under ``--minutes`` too.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch


def lr_factor(step: int, horizon: int, schedule: str, warmup: int) -> float:
    """Learning-rate multiplier for the update made at ``step`` (0-based).

    Linear warm-up over the first ``warmup`` updates (the first update runs at 1/warmup of the rate), then
    constant, linear decay to 0 at ``horizon``, or cosine decay to 0 at ``horizon``.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(max(step - warmup, 0) / max(horizon - warmup, 1), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def set_learning_rates(optimizers: Sequence[torch.optim.Optimizer], bases: Sequence[float], factor: float) -> None:
    """Sets every param group of ``optimizers[i]`` to ``bases[i] * factor``."""
    for optimizer, base in zip(optimizers, bases):
        for group in optimizer.param_groups:
            group["lr"] = base * factor


def annealed(start: float, step: int, horizon: int) -> float:
    """``start`` decayed linearly to 0 at ``horizon`` (instance noise and other annealed weights)."""
    return start * max(0.0, 1.0 - step / max(horizon, 1))
