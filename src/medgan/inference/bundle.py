"""Shareable model bundles: the inference generator of a run, without anything that saw or names the patients.

``medgan bundle --run RUN --out DIR`` writes::

    generator.safetensors   the inference generator's weights (EMA weights where EMA was on), safetensors format
    config.json             the run's config with every data location replaced (``medgan.card.shareable_config``)
    data.json               the data spec: resolution, spacing, classes, attributes, intensity mappings, counts and
                            the training data's SHA-256
    inference.json          the inference state without weights: its kind and, for translators, inputs and target
    DATA_CARD.json          the synthetic-data card, with the SHA-256 of each file above under ``bundle.files``

``medgan sample --model DIR`` and ``medgan translate --model DIR`` load a bundle through the same inference
factories as a run (``medgan.inference.load_model``), so a bundle samples exactly like its run. Every file is
checked against the card before anything is read; a missing, corrupt or modified file is a one-line error.

What a run directory may keep privately, and what a bundle carries:

* The run directory is the user's own record and may hold data locations: ``config.yaml`` and the checkpoints'
  config name ``data.source`` (and ``labels``, ``input``, ``pairs``, ``domain_a``) as given on the command line,
  which may be absolute paths with patient names in them. Checkpoints also hold the discriminator (it saw the
  real images) and the optimizer states; ``samples/`` grids of image-to-image runs show real training inputs.
  None of them holds DICOM identifiers (PatientName/ID, UIDs, dates): readers keep a subject key only in memory
  for patient-level splits, and ``data.json`` and ``train.log`` hold counts, not names.
* A bundle carries none of that: no optimizer state, no discriminator, no paths (data locations are replaced by
  ``medgan.card.WITHHELD``; embedded sources such as ``ct-phantom`` keep their names), no subject keys and no
  DICOM value; the safetensors header holds tensor names, shapes and dtypes only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from medgan.card import CARD_NAME, card_from_checkpoint, card_text, read_card, sealed, shareable_config
from medgan.config import saved_config
from medgan.data.spec import DataSpec
from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.run import RunDir, RunState, check_output_folder
from medgan.utils import atomic_write_files

BUNDLE_FORMAT = 1
WEIGHTS = "generator.safetensors"
CONFIG = "config.json"
SPEC = "data.json"
INFERENCE_FILE = "inference.json"
BUNDLE_FILES = (WEIGHTS, CONFIG, SPEC, INFERENCE_FILE)  # every file the card lists with its SHA-256


def is_bundle(path: str | Path) -> bool:
    """True for a folder that holds bundle weights (``read_bundle`` then checks everything else)."""
    return (Path(path) / WEIGHTS).is_file()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_inference(inference: dict[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An inference state as (tensors, the JSON-safe rest).

    Every dict of tensors (a state dict such as ``generator``, also nested, e.g. an unpaired run's
    ``directions.b2a.generator``) goes to the weights, each tensor named ``<key path joined by "/">:<parameter>``;
    anything else must be plain JSON (kind, input and target names). A state without any weights raises
    CheckpointError: there is nothing to bundle.
    """
    tensors: dict[str, torch.Tensor] = {}

    def visit(node: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        rest: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
                # Cloned: safetensors refuses tensors that share memory (tied or viewed parameters).
                tensors.update({f"{'/'.join((*keys, key))}:{name}": tensor.detach().cpu().contiguous().clone()
                                for name, tensor in value.items()})
            elif isinstance(value, dict):
                rest[key] = visit(value, (*keys, key))
            else:
                rest[key] = value
        return rest

    rest = visit(inference, ())
    if not tensors:
        raise CheckpointError("the run's checkpoint holds no inference weights to bundle", path)
    try:
        json.dumps(rest, allow_nan=False)
    except (TypeError, ValueError):
        raise CheckpointError("the run's inference state holds values a bundle cannot carry", path) from None
    return tensors, rest


def join_inference(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``split_inference``."""
    inference = json.loads(json.dumps(rest))  # a deep copy
    for name, tensor in tensors.items():
        keys, _, parameter = name.partition(":")
        node = inference
        for key in keys.split("/"):
            node = node.setdefault(key, {})
        node[parameter] = tensor
    return inference


def write_bundle(run_dir: str | Path, out: str | Path, which: str = "best", half: bool = False) -> list[Path]:
    """Writes the bundle of a run's ``which`` checkpoint (falling back to latest) into ``out``, all files together.

    Args:
        run_dir: a ``medgan train`` run directory.
        out: the bundle folder (created; files of an earlier bundle there are replaced; a folder holding any
            other file is refused).
        which: "best" or "latest".
        half: store floating-point weights as float16 (half the file; loading casts them back to the model's
            float32). Check that it samples the same before sharing: ``benchmarks/build_zoo.py`` measures it.

    Returns:
        The paths written.

    Raises:
        CheckpointError: no run, no checkpoint, a corrupt one, or one without inference weights.
        ConfigError: ``out`` cannot be written, is the run directory itself or holds other files.
    """
    run = RunDir.existing(run_dir)
    out = Path(out)
    check_output_folder(out, "--out")
    if out.resolve() == run.path.resolve():
        raise ConfigError("--out must be a new folder, not the run directory", out)
    _check_bundle_folder(out)
    state, path = run.load_checkpoint(which)
    loaded = RunState.from_checkpoint(dict(state), path)
    tensors, rest = split_inference(loaded.inference, path)
    if half:
        tensors = {name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in tensors.items()}
    contents: dict[str, bytes] = {
        WEIGHTS: save_safetensors(tensors, metadata={"format": "pt"}),
        CONFIG: (json.dumps(shareable_config(loaded.config), indent=2) + "\n").encode("utf-8"),
        SPEC: (json.dumps(loaded.spec.to_dict(), indent=2) + "\n").encode("utf-8"),
        INFERENCE_FILE: (json.dumps(rest, indent=2) + "\n").encode("utf-8"),
    }
    card = card_from_checkpoint(state, path, run.path)
    card["bundle"] = {"format": BUNDLE_FORMAT, "weights": "float16" if half else "as trained", "files": {name: _sha256(data) for name, data in contents.items()},
                      "excluded": ["optimizer states", "discriminator", "training state and RNG states",
                                   "data locations", "subject keys", "DICOM identifiers"]}
    files: dict[Path, bytes | str] = {out / name: data for name, data in contents.items()}
    files[out / CARD_NAME] = card_text(sealed(card))
    return atomic_write_files(files)


def _check_bundle_folder(out: Path) -> None:
    """Refuses an ``out`` that holds anything but an earlier bundle's files: a bundle is shared as its folder, so
    other files there (notes, images, a run) would travel with it, mixed with the bundle's own."""
    if not out.is_dir():
        return
    own = {*BUNDLE_FILES, CARD_NAME}
    others = sorted(entry.name for entry in out.iterdir() if entry.name not in own)
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(f"--out holds other files ({shown}); a bundle goes into a new or empty folder, or replaces "
                          "an earlier bundle", out)


def read_bundle(folder: str | Path) -> RunState:
    """The config, data spec and inference state of a bundle, after checking every file against its card.

    Raises:
        CheckpointError: a missing, unreadable, corrupt or modified file (naming it), or an incompatible bundle.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError("model bundle not found", folder)
    card = read_card(folder / CARD_NAME)
    listed = card.get("bundle", {}).get("files") if isinstance(card.get("bundle"), dict) else None
    if not isinstance(listed, dict) or sorted(listed) != sorted(BUNDLE_FILES):
        raise CheckpointError("data card does not list this bundle's files (not a medgan bundle)", folder / CARD_NAME)
    contents: dict[str, bytes] = {}
    for name in BUNDLE_FILES:
        try:
            contents[name] = (folder / name).read_bytes()
        except OSError as error:
            raise CheckpointError(f"bundle file missing or unreadable ({error.strerror})", folder / name) from None
        if _sha256(contents[name]) != listed[name]:
            raise CheckpointError(f"does not match its SHA-256 in {CARD_NAME} (the file is corrupted or was "
                                  "modified)", folder / name)
    try:
        tensors = load_safetensors(contents[WEIGHTS])
        config = saved_config(json.loads(contents[CONFIG]))
        spec = DataSpec.from_dict(json.loads(contents[SPEC]))
        rest = json.loads(contents[INFERENCE_FILE])
        if not isinstance(rest, dict) or not isinstance(rest.get("kind"), str):
            raise CheckpointError("bundle has no inference kind", folder / INFERENCE_FILE)
    except (SafetensorError, ValueError, ConfigError, DataError) as error:
        detail = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        raise CheckpointError(f"bundle is incomplete or incompatible ({detail})", folder) from None
    return RunState(config, spec, join_inference(tensors, rest), folder / WEIGHTS)
