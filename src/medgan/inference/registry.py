"""The registry of inference model kinds, and loading one from a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from medgan.errors import CheckpointError, ConfigError
from medgan.inference.bundle import is_bundle, read_bundle
from medgan.registry import Registry
from medgan.run import RunDir, RunState

INFERENCE: Registry[Callable[[RunState, str | None], Any]] = Registry("inference model kind")
"""``factory(state, direction)``: the model of a run's inference state (``direction`` None: the default)."""


def load_model(run_dir: str | Path, which: str = "best", direction: str | None = None) -> Any:
    """The inference model of a run (its ``which`` checkpoint, falling back to latest), on the CPU in eval mode.

    Args:
        run_dir: the run directory, or a model bundle (``medgan bundle``).
        which: "best" or "latest".
        direction: for runs that translate both ways (unpaired), "a2b" or "b2a"; None is the run's default.

    Raises:
        CheckpointError: no run, no checkpoint, a corrupt checkpoint, or an unknown inference kind.
        ConfigError: a direction the run does not have.
    """
    # A model bundle (medgan.inference.bundle) gives the same state, checked against its data card.
    state = read_bundle(run_dir) if is_bundle(run_dir) else RunDir.existing(run_dir).load_inference(which)
    try:
        factory = INFERENCE.get(state.inference["kind"])
    except ConfigError as error:
        raise CheckpointError(error.message, state.path) from None
    # Building the network draws its (discarded) initial weights from torch's global generator: forked, so loading
    # a model leaves the caller's random stream where it was.
    with torch.random.fork_rng(devices=[]):
        return factory(state, direction)
