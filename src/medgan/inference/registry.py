"""The registry of inference model kinds, and loading one from a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from medgan.errors import CheckpointError, ConfigError
from medgan.registry import Registry
from medgan.run import RunDir, RunState

INFERENCE: Registry[Callable[[RunState], Any]] = Registry("inference model kind")


def load_model(run_dir: str | Path, which: str = "best") -> Any:
    """The inference model of a run (its ``which`` checkpoint, falling back to latest), on the CPU in eval mode.

    Raises:
        CheckpointError: no run, no checkpoint, a corrupt checkpoint, or an unknown inference kind.
    """
    state = RunDir.existing(run_dir).load_inference(which)
    try:
        factory = INFERENCE.get(state.inference["kind"])
    except ConfigError as error:
        raise CheckpointError(error.message, state.path) from None
    return factory(state)
