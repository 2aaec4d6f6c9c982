"""Checkpoint files: state dicts, the resolved config, the data spec and RNG states; never pickled code.

Layout (``FORMAT_VERSION`` 2)::

    format_version   2
    versions         {"medgan": ..., "torch": ...}
    config           the resolved RunConfig as a plain dict
    data_spec        DataSpec.to_dict()
    inference        {"kind": <medgan.inference kind>, ...}: all that sampling/translation needs
    task             the task's training state (weights, optimizers, counters, RNG)
    loop             the loop's state (step, best score, batch sampler, ...)
    content_sha256   SHA-256 over every key, tensor and value above (see ``content_hash``)

Saved with ``torch.save`` through a temporary file and an atomic rename. Loaded with ``weights_only=True``,
so a checkpoint from an untrusted source cannot run code, and verified against ``content_sha256``: ``torch.load``
does not check the zip CRCs, so without the hash a flipped bit in a weight goes unnoticed and silently
changes every sample.

Format 1 (medgan 0.1, before the task contract) is not read: such files get a one-line error saying so.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

import medgan
from medgan.errors import CheckpointError
from medgan.utils import atomic_path

FORMAT_VERSION = 2  # bumped when the checkpoint layout changes incompatibly
HASH_KEY = "content_sha256"


def content_hash(state: Any) -> str:
    """SHA-256 of a nested structure of dicts, lists, tensors, numbers and strings, in a canonical order.

    Dict keys are visited sorted; tensors contribute their dtype, shape and raw bytes; everything else its
    type name and ``repr``. Two states hash equally exactly when they hold the same values.
    """
    digest = hashlib.sha256()

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            digest.update(b"{")
            for key in sorted(value, key=str):
                digest.update(str(key).encode() + b":")
                visit(value[key])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[" + struct.pack("<q", len(value)))
            for item in value:
                visit(item)
            digest.update(b"]")
        elif isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        else:
            digest.update(f"{type(value).__name__}={value!r};".encode())

    visit(state)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Writes ``state`` (plain containers of tensors, numbers and strings) atomically, with its content hash.

    Args:
        path: destination ``.pt`` file.
        state: the checkpoint content; ``format_version``, ``versions`` and ``content_sha256`` are added here.
    """
    payload = dict(state)
    payload["format_version"] = FORMAT_VERSION
    payload["versions"] = {"medgan": medgan.__version__, "torch": str(torch.__version__)}
    payload[HASH_KEY] = content_hash(payload)
    # Serialized in memory, then written with one plain write: torch.save's own file writer reports a full
    # disk as a RuntimeError ("unexpected pos ..."), a plain write as OSError(ENOSPC) naming the file.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ("config", "data_spec", "inference")) -> dict[str, Any]:
    """Reads and verifies a checkpoint; a missing, corrupt, tampered or foreign file raises CheckpointError.

    Args:
        path: a ``.pt`` file written by :func:`save_checkpoint`.
        required: top-level keys that must be present.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError,
            KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError, struct.error) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"not a readable medgan checkpoint ({reason[:160]})", path) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError("not a medgan checkpoint (no format_version)", path)
    version = state["format_version"]
    if version != FORMAT_VERSION:
        if isinstance(version, int) and version < FORMAT_VERSION:
            raise CheckpointError(f"written by an older medgan (checkpoint format {version}; this medgan reads "
                                  f"format {FORMAT_VERSION}): retrain the run, or sample it with medgan 0.1", path)
        raise CheckpointError(f"checkpoint format {version!r} is not supported (expected {FORMAT_VERSION})", path)
    stored = state.pop(HASH_KEY, None)
    if not isinstance(stored, str):
        raise CheckpointError("checkpoint has no content hash", path)
    if content_hash(state) != stored:
        raise CheckpointError("checkpoint content does not match its SHA-256 (the file is corrupted or was "
                              "modified)", path)
    missing = [key for key in required if not isinstance(state.get(key), dict)]
    if missing:
        raise CheckpointError(f"checkpoint lacks its {missing[0]!r} section", path)
    return state


def load_module_state(module: torch.nn.Module, state: Any, path: str | Path, name: str) -> None:
    """``module.load_state_dict(state)`` with a one-line CheckpointError when shapes, keys or types do not match."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{name} weights are not a state dict", path)
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])[:200]
        raise CheckpointError(f"{name} weights do not fit this model ({detail})", path) from None
