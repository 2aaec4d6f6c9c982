"""Synthetic-data cards (``DATA_CARD.json``): what a model or a set of synthetic images is, where it came from,
how it scored and what privacy it offers. One is written beside every export (``medgan sample``,
``medgan translate``), every evaluation (``medgan evaluate``) and into every model bundle (``medgan bundle``).

A card records:

* provenance: the SHA-256 of the training tensors (``DataSpec.data_sha256``, computed once at training time),
  the numbers of subjects and slices, the config (data locations replaced by ``WITHHELD``), the seed, the
  training steps, the medgan version and git commit, and the SHA-256 of the checkpoint file;
* modality and intensity mapping of every image domain (from the data spec);
* results that exist for the run: the last in-training evaluation (``metrics.jsonl``) and the ``metrics.json`` /
  ``audit.json`` files in the run directory or its direct sub-folders (e.g. ``medgan evaluate --out RUN/eval``);
* the differential-privacy guarantee (the checkpoint's ``privacy`` section) or the words ``NO_GUARANTEE``, and
  whether the sampling privacy filter was on;
* intended use and "not for diagnostic use".

A card never holds a file path, a subject key, a DICOM identifier or any string read from a result file: only the
numbers and booleans of result files are copied (their strings may name data locations or held-out subjects).

Where medigan's model metadata schema (RichardObi/medigan ``config/template.json`` and ``config/global.json``) has a
matching field, the card's ``medigan`` section uses its name and nesting: ``execution.{model_name, extension,
image_size, dependencies, generate_method.input_latent_vector_size}``, ``selection.{performance.{FID,
downstream_task.{CLF, SEG}.{trained_on_real, trained_on_real_and_fake, trained_on_fake}}, use_cases, modality,
function, generates, dataset, dataset_type, augmentations, height, width, depth, type, license,
privacy_preservation, tags}`` and ``description.{title, version, comment}``. medigan has no ``vision_task`` field;
``use_cases`` and ``function`` play that role.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import medgan
from medgan.card.results import find_results, summarize_result
from medgan.config import RunConfig, to_dict
from medgan.data.sources import SOURCES
from medgan.data.spec import DataSpec
from medgan.data.transforms import flips
from medgan.errors import CheckpointError
from medgan.run import RunDir, RunState
from medgan.utils import atomic_write_text

CARD_NAME = "DATA_CARD.json"
CARD_FORMAT = 1
NO_GUARANTEE = "no formal privacy guarantee"
NOT_FOR_DIAGNOSTIC_USE = "not for diagnostic use"
INTENDED_USE = ("Research and development with synthetic medical images: method development, data augmentation, "
                "teaching, and sharing in place of patient images where the privacy results in this card are "
                f"acceptable to the data owner. Synthetic images are {NOT_FOR_DIAGNOSTIC_USE}.")
WITHHELD = "withheld (user data; its location is not part of this card or bundle)"
PATH_KEYS = ("source", "labels", "input", "pairs", "domain_a")  # data config keys that hold file or folder paths
DP_KEYS = ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "unit", "sample_rate", "steps", "accountant",
           "mechanism", "target_epsilon", "units")  # the checkpoint's ``privacy`` record (medgan.training.privacy)
MODEL_TYPES = {"dcgan": "DCGAN", "resnet": "SN-ResNet GAN", "unet": "U-Net translator GAN"}


# ---------------------------------------------------------------------------------------------------------------
# small helpers


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> str | None:
    """The commit of the medgan source tree when it is a git checkout (an editable install), else None."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(medgan.__file__).parent, capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def plain(value: Any) -> Any:
    """JSON-safe copy: tuples become lists, NaN/Inf become None."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def card_hash(card: Mapping[str, Any]) -> str:
    """SHA-256 of a card's canonical JSON without its own ``card_sha256`` field."""
    body = {key: value for key, value in card.items() if key != "card_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def sealed(card: dict[str, Any]) -> dict[str, Any]:
    """The card with ``card_sha256`` set (a changed byte of a sealed card no longer matches)."""
    card = plain(card)
    card["card_sha256"] = card_hash(card)
    return card


def shareable_source(value: str | None) -> str | None:
    """An embedded source name (``mni152``, ``ct-phantom``, ...) as it is; any path becomes ``WITHHELD``."""
    if value is None:
        return None
    return value if value in SOURCES.names() else WITHHELD


def shareable_config(config: RunConfig) -> dict[str, Any]:
    """The config as a plain dict with every data location (``PATH_KEYS``) replaced by ``WITHHELD``.

    Inference reads no data location (only ``data.axis``, ``data.percentiles`` and ``data.degrade``), so the
    result still loads with ``medgan.config.from_dict`` and samples and translates exactly like the original.
    """
    values = to_dict(config)
    data = values["data"]
    for key in PATH_KEYS:
        value = data.get(key)
        data[key] = [shareable_source(item) for item in value] if isinstance(value, list) else shareable_source(value)
    return values


# ---------------------------------------------------------------------------------------------------------------
# building cards


def modality_of(mapping: Any, config: RunConfig) -> str:
    """CT for HU mappings, a label map for ``label`` units, else MR (medgan maps every non-CT image like MR)."""
    if mapping.unit == "HU":
        return "CT"
    if mapping.unit == "label":
        return "label map"
    return "MR" if config.data.modality in ("auto", "mri") else config.data.modality.upper()


def privacy_section(privacy: Mapping[str, Any] | None, privacy_filter: str = "not applicable") -> dict[str, Any]:
    """The DP guarantee (from a checkpoint's ``privacy`` section) or ``NO_GUARANTEE``, and the filter state."""
    dp = {key: privacy[key] for key in DP_KEYS if key in privacy} if isinstance(privacy, Mapping) else None
    epsilon = dp.get("epsilon") if dp else None
    if isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0:
        delta = dp.get("delta")
        delta_text = f"{delta:.3g}" if isinstance(delta, (int, float)) else "?"
        guarantee = (f"({epsilon:.4g}, {delta_text})-differential privacy per {dp.get('unit', 'unit')} "
                     f"({dp.get('accountant', '?')} accountant) for the discriminator's use of the training data; "
                     "the generator and every sample are post-processing (mechanism: differential_privacy)")
    else:
        guarantee = NO_GUARANTEE
    return {"guarantee": guarantee, "differential_privacy": dp, "privacy_filter": privacy_filter,
            "note": "memorization and membership-inference results are empirical checks, not guarantees"}


def _medigan(config: RunConfig, spec: DataSpec, inference_kind: str, results: Mapping[str, Any],
             privacy: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of medigan's model metadata schema that a medgan run can fill (see the module docstring)."""
    modalities = sorted({modality_of(domain.mapping, config) for domain in spec.domains})
    source = shareable_source(config.data.source)
    image_to_image = inference_kind == "image-to-image"
    function = ["image to image"] if image_to_image else \
        ["noise to image", "image generation", "conditional generation" if spec.class_names else
         "unconditional generation", "data augmentation"]
    performance: dict[str, Any] = {}
    fid = results.get("evaluation", {}).get("values", {}).get("distribution.fid")
    if fid is not None:
        performance["FID"] = fid
    for kind, task, metrics in (("classification_utility", "CLF", {"accuracy": "accuracy", "AUROC": "macro_auc"}),
                                ("segmentation_utility", "SEG", {"dice": "mean_dice"})):
        values = results.get(kind, {}).get("values", {})
        for arm, name in (("real", "trained_on_real"), ("real+synthetic", "trained_on_real_and_fake"),
                          ("synthetic", "trained_on_fake")):
            found = {label: values[f"arms.{arm}.{key}.mean"] for label, key in metrics.items()
                     if f"arms.{arm}.{key}.mean" in values}
            if found:
                performance.setdefault("downstream_task", {}).setdefault(task, {})[name] = found
    augmentations = [name for name, on in (("horizontal flip", flips(config.data.flip, spec.mapping.unit)),
                                           ("rotation", config.data.rotate_degrees > 0),
                                           ("scale", config.data.scale > 0)) if on] + list(config.augment.policy)
    return {
        "execution": {"model_name": "generator", "extension": ".safetensors",
                      "image_size": [spec.resolution, spec.resolution], "dependencies": ["medgan", "torch",
                                                                                       "safetensors"],
                      "generate_method": {} if image_to_image else
                      {"input_latent_vector_size": config.model.latent_dim}},
        "selection": {
            "performance": performance, "use_cases": ["domain-translation"] if image_to_image else
            (["classification"] if spec.class_names else []), "modality": modalities, "function": function,
            "generates": list(spec.class_names) or [f"{modalities[0]} slices"],
            "dataset": [source] if source != WITHHELD else [], "dataset_type":
            {"mni152": "public", "ct-phantom": "synthetic phantom", "ct-lesions": "synthetic phantom",
             "ct-phantom-volumes": "synthetic phantom"}.get(source),
            "augmentations": augmentations, "height": spec.resolution, "width": spec.resolution, "depth": None,
            "type": MODEL_TYPES.get(config.model.name, config.model.name), "license": None,
            "privacy_preservation": None if privacy["differential_privacy"] is None else
            {"differential_privacy": privacy["differential_privacy"], "guarantee": privacy["guarantee"]},
            "tags": ["medgan", *modalities, f"{spec.resolution}x{spec.resolution}", config.task],
        },
        "description": {"title": f"medgan {config.task} model ({', '.join(modalities)}, "
                                 f"{spec.resolution}x{spec.resolution})",
                        "version": medgan.__version__, "comment": INTENDED_USE},
    }


def build_card(config: RunConfig, spec: DataSpec, inference_kind: str, privacy: Mapping[str, Any] | None = None,
               results: Mapping[str, Any] | None = None, steps: int | None = None,
               checkpoint_sha256: str | None = None, trained_with: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A sealed card for a trained model.

    Args:
        config: the run's config (its data locations are withheld in the card).
        spec: the run's data spec (training-data hash, subjects, slices, mappings).
        inference_kind: the inference state's kind (``"noise-to-image"`` or ``"image-to-image"``).
        privacy: the checkpoint's ``privacy`` section (DP training), or None.
        results: result summaries by kind (``find_results``).
        steps: training steps of the checkpoint.
        checkpoint_sha256: SHA-256 of the checkpoint file the model came from.
        trained_with: the checkpoint's ``versions`` (medgan and torch that trained it); ``medgan_version`` and
            ``git_commit`` are those of the code writing the card.
    """
    results = dict(results or {})
    privacy_info = privacy_section(privacy)
    domains = [{"name": domain.name, "channels": domain.channels, "modality": modality_of(domain.mapping, config),
                "intensity_mapping": domain.mapping.to_dict()} for domain in spec.domains]
    return sealed({
        "card": "medgan synthetic-data card", "card_format": CARD_FORMAT,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "intended_use": INTENDED_USE, "not_for_diagnostic_use": True,
        "provenance": {"data_sha256": spec.data_sha256 or None, "subjects": spec.subjects, "slices": spec.images,
                       "data_source": shareable_source(config.data.source), "task": config.task,
                       "inference_kind": inference_kind, "seed": config.train.seed, "steps": steps,
                       "medgan_version": medgan.__version__, "git_commit": git_commit(),
                       "checkpoint_sha256": checkpoint_sha256, "trained_with": dict(trained_with or {}) or None,
                       "config": shareable_config(config)},
        "modality": {"modality": domains[0]["modality"], "unit": spec.mapping.unit,
                     "intensity_mapping": spec.mapping.to_dict(), "domains": domains,
                     "resolution": spec.resolution, "spacing_mm": list(spec.spacing),
                     "class_names": list(spec.class_names), "attribute_names": list(spec.attribute_names),
                     "degradation": spec.degradation or None},
        "privacy": privacy_info,
        "results": results,
        "medigan": _medigan(config, spec, inference_kind, results, privacy_info),
    })


def card_from_checkpoint(state: Mapping[str, Any], path: Path, run_dir: Path | None) -> dict[str, Any]:
    """The card of a loaded, verified checkpoint (``medgan.checkpoint.load_checkpoint``) of the run ``run_dir``."""
    loaded = RunState.from_checkpoint(dict(state), path)
    loop = state.get("loop") if isinstance(state.get("loop"), Mapping) else {}
    steps = loop.get("step") if isinstance(loop.get("step"), int) else None
    versions = state.get("versions") if isinstance(state.get("versions"), Mapping) else None
    return build_card(loaded.config, loaded.spec, loaded.inference["kind"], state.get("privacy"),
                      find_results(run_dir) if run_dir is not None else {}, steps, file_sha256(path),
                      {key: str(value) for key, value in (versions or {}).items()})


def run_card(run_dir: str | Path, which: str = "best") -> dict[str, Any]:
    """The card of a run directory's ``which`` checkpoint (falling back to latest)."""
    run = RunDir.existing(run_dir)
    state, path = run.load_checkpoint(which)
    return card_from_checkpoint(state, path, run.path)


def read_card(path: str | Path) -> dict[str, Any]:
    """A card file, checked against its ``card_sha256``; unreadable or modified raises CheckpointError."""
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"not a readable data card ({type(error).__name__})", path) from None
    if not isinstance(card, dict) or card.get("card_sha256") != card_hash(card):
        raise CheckpointError("data card does not match its card_sha256 (corrupted or modified)", path)
    return card


def model_card(source: str | Path) -> dict[str, Any] | None:
    """The card of whatever made a set of images: a run directory, a bundle or a folder holding ``CARD_NAME``."""
    source = Path(source)
    if RunDir.is_run(source):
        return run_card(source)
    if (source / CARD_NAME).is_file():
        return read_card(source / CARD_NAME)
    return None


def derived_card(base: Mapping[str, Any] | None, section: str, values: Mapping[str, Any],
                 privacy_filter: str | None = None) -> dict[str, Any]:
    """A sealed copy of ``base`` (the model's card; None: unknown) with a ``section`` (``export``/``evaluation``)
    added, the bundle's file list left out and, for exports, the privacy filter's state."""
    card = {key: value for key, value in (base or {}).items() if key not in ("bundle", "card_sha256")}
    if base is None:
        card.update({"card": "medgan synthetic-data card", "card_format": CARD_FORMAT,
                     "intended_use": INTENDED_USE, "not_for_diagnostic_use": True,
                     "provenance": None, "privacy": privacy_section(None)})
        card["provenance_note"] = "unknown: the images came without a medgan run, bundle or data card"
    if base is not None and "card_sha256" in base:
        card["model_card_sha256"] = base["card_sha256"]
    card["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if privacy_filter is not None:
        card["privacy"] = {**card.get("privacy", {}), "privacy_filter": privacy_filter}
    card[section] = dict(values)
    return sealed(card)


def filter_state(value: Any) -> str:
    """The sampling metadata's ``privacy_filter`` as "on", "off" or "unknown" (missing)."""
    if isinstance(value, Mapping):
        value = value.get("enabled", value.get("on", True))
    return "unknown" if value is None else "on" if value else "off"


def write_card(folder: str | Path, card: Mapping[str, Any]) -> Path:
    """Writes ``folder/DATA_CARD.json`` atomically, sealed (``card_sha256`` of its content), and returns its path."""
    path = Path(folder) / CARD_NAME
    atomic_write_text(path, card_text(sealed(dict(card))))
    return path


def card_text(card: Mapping[str, Any]) -> str:
    """The card as the JSON text written to ``DATA_CARD.json``."""
    return json.dumps(plain(card), indent=2, allow_nan=False) + "\n"


def export_card(source: str | Path, values: Mapping[str, Any], privacy_filter: str | None = None) -> dict[str, Any]:
    """The card written beside an export: the card of the run or bundle ``source`` plus an ``export`` section."""
    return derived_card(model_card(source), "export", values, privacy_filter)


def evaluation_card(fake: str | Path, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The card written beside an evaluation: the card of what made the synthetic images (a run, or the card in
    their folder; else provenance unknown) with this evaluation's results (numbers only) in ``results``."""
    try:
        base, problem = model_card(fake), None
    except CheckpointError as error:  # a modified card beside the images: the evaluation stands, its origin does not
        base, problem = None, f"the synthetic images' data card is unusable ({error.message}); provenance unknown"
    summaries = summarize_result(metrics, "metrics.json")
    inputs = metrics.get("inputs") if isinstance(metrics.get("inputs"), Mapping) else {}
    counts = {key: inputs.get(key) for key in ("real_images", "synthetic_images", "train_images", "real_volumes",
                                               "synthetic_volumes", "train_volumes", "resolution")
              if isinstance(inputs.get(key), int)}
    card = derived_card(base, "evaluation", {"command": "medgan evaluate", **counts, "result_kinds": sorted(summaries)})
    card["results"] = {**(card.get("results") or {}), **summaries}
    if problem is not None:
        card["provenance_note"] = problem
    return sealed(card)
