"""Divergence guards: non-finite losses, weights and buffers."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


def first_nonfinite_log(logs: dict[str, float]) -> str | None:
    """The first log key whose value is NaN or infinite, or None."""
    return next((key for key, value in logs.items() if not math.isfinite(value)), None)


def first_nonfinite_tensor(modules: dict[str, nn.Module]) -> str | None:
    """``"module.parameter"`` of the first parameter or buffer holding NaN or Inf, or None.

    A loss can stay finite while BatchNorm running statistics have already overflowed; a checkpoint with
    such buffers can neither sample nor resume, so checkpoints are only written when this returns None.
    """
    for name, module in modules.items():
        for key, tensor in _tensors(module):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return f"{name}.{key}"
    return None


def _tensors(module: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    yield from module.named_parameters()
    yield from module.named_buffers()
