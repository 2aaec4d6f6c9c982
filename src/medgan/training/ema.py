"""Generator EMA with a ramped decay, and BatchNorm standing statistics for inference copies."""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn


class EMA:
    """An exponential moving average of a module's weights.

    Args:
        module: the trained module (its buffers, e.g. BatchNorm statistics, are copied as they are).
        decay: the largest decay; the decay is ramped as ``min(decay, (1 + t) / (10 + t))``.
        start: steps before the average starts tracking (it is a plain copy until then).

    The ramp keeps the average's horizon (about 1 / (1 - decay) steps) short early on: short CPU runs of a few
    thousand steps would otherwise average mostly untrained weights (the same reason as StyleGAN2's ramp-up).
    """

    def __init__(self, module: nn.Module, decay: float, start: int = 0) -> None:
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay = decay
        self.start = start

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """ema <- d * ema + (1 - d) * module, for the update made at ``step`` (1-based count of updates)."""
        since = step - self.start
        decay = 0.0 if since < 0 else min(self.decay, (1.0 + since) / (10.0 + since))
        for ema_param, param in zip(self.module.parameters(), module.parameters()):
            ema_param.lerp_(param, 1.0 - decay)
        for ema_buffer, buffer in zip(self.module.buffers(), module.buffers()):
            ema_buffer.copy_(buffer)


@torch.no_grad()
def standing_statistics(model: nn.Module, forward: Callable[[], object], batches: int = 8) -> None:
    """Recomputes BatchNorm running statistics of ``model`` over ``batches`` calls of ``forward``.

    EMA weights never ran forward during training, so BatchNorm statistics copied from G do not match them;
    averaging batch statistics over a few batches (BigGAN's standing statistics) fixes that and makes
    eval-mode outputs independent of batch composition. The model's train/eval mode is restored.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes below
    model.train()
    for _ in range(batches):
        forward()
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)
