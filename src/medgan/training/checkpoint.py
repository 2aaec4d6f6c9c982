"""Checkpoints: state dicts, the resolved config, RNG states and versions; never pickled code.

Saved with ``torch.save`` through a temporary file and an atomic rename; loaded with ``weights_only=True``
so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

import medgan
from medgan.errors import CheckpointError
from medgan.utils import atomic_path

FORMAT_VERSION = 1  # bumped when the checkpoint layout changes incompatibly


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Writes ``state`` (plain containers of tensors, numbers and strings) atomically.

    Args:
        path: destination ``.pt`` file.
        state: the checkpoint content; ``format_version`` and ``versions`` are added here.
    """
    payload = dict(state)
    payload["format_version"] = FORMAT_VERSION
    payload["versions"] = {"medgan": medgan.__version__, "torch": str(torch.__version__)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Reads a checkpoint safely; a missing, corrupt or foreign file raises CheckpointError naming it.

    Args:
        path: a ``.pt`` file written by :func:`save_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"not a readable medgan checkpoint ({reason[:160]})", path) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError("not a medgan checkpoint (no format_version)", path)
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {state['format_version']} is not supported (expected {FORMAT_VERSION})", path
        )
    return state


def load_module_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, name: str) -> None:
    """``module.load_state_dict(state)`` with a one-line CheckpointError when shapes or keys do not match."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])[:200]
        raise CheckpointError(f"{name} weights do not fit this model ({detail})", path) from None
