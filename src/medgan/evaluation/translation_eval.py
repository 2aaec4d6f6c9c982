"""Evaluation of modality translation (unpaired runs, paired runs with input modalities) on held-out true pairs.

``evaluate_translation(run_dir, out, ...)`` translates held-out inputs with the run's ``Translator`` (its default
direction unless one is given, for runs that translate both ways), puts beside it an identity baseline and any ``compare`` runs, maps everything
to the target mapping's physical units and measures each against the truth (``medgan.evaluation.tissue``):

* over the body (``paired_regions.body_mask``): MAE, PSNR, SSIM (``medgan.metrics.paired.paired_errors``;
  PSNR's peak and SSIM's L are the target mapping's range, for CT the window width);
* HU targets: MAE per tissue class (phantom labels where the tiles have them, else HU classes of the truth),
  Dice of bone (> 200 HU) and of the body outline (> -500 HU) between output and truth, and, with phantom
  labels, per-organ bias and MAE (liver, aorta, kidney: contrast-phase translation);
* two-way runs: the cycle error of held-out inputs through both generators (a -> b -> a for a2b), L1 in unit
  space over the tile (all input channels, as in training) and MAE in the first input modality's units;
* KID (and FID above 64 images, the offline features' dimension) of outputs against the held-out targets.

Baselines: "linear": the least-squares line from the first input modality (as the model sees it, unit space)
to the target's physical units, fitted over the body pixels of the training split's true pairs (the strongest
linear map of the input; user pairs without a training split: fitted on the held-out pairs, noted as
optimistic); "input": the input itself where input and target share HU (contrast phases). Values outside the
target window are clipped to it, as every output of the run is.

Intervals resample held-out subjects (``grouped_interval``). ``metrics.json``, ``report.html`` and the data
card are written together, or none.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.card import CARD_NAME, card_text, evaluation_card
from medgan.config import DataConfig
from medgan.data.datasets import SliceSet
from medgan.data.intensity import IntensityMapping
from medgan.data.pairs import input_names
from medgan.errors import ConfigError, DataError
from medgan.evaluation.evaluate import _json_ready as json_ready
from medgan.evaluation.paired import _evenly
from medgan.evaluation.paired_regions import body_mask
from medgan.evaluation.tissue import (LITERATURE_BAND_HU, LITERATURE_NOTE, anatomy_measures, fit_linear,
                                      organ_errors, tissue_masks)
from medgan.evaluation.translation_data import load_pairs, phantom_tissue_labels, training_pairs_config
from medgan.evaluation.translation_report import format_translation_table, render_translation_report
from medgan.metrics.paired import as_stack, grouped_interval, paired_errors
from medgan.inference.translate import Direction
from medgan.run import RunDir, check_output_folder
from medgan.utils import atomic_write_files

__all__ = ["evaluate_translation", "format_translation_table"]

FID_MIN_IMAGES = 65  # FID needs more images than the 64 offline features
KID_SUBSETS = 50


def _inputs(held: SliceSet, model: Any, where: str) -> dict[str, torch.Tensor]:
    """The held-out input tiles by the model's input domain names (``"input"``, ... in the run's order)."""
    names = input_names(len(model.input_domains))
    missing = [name for name in names if name not in held.aligned]
    if missing:
        raise DataError(f"the held-out pairs have {len(held.aligned)} input modalities; this run translates "
                        f"{len(names)} ({' + '.join(model.input_domains)})", where)
    return {domain: held.aligned[name].float() for domain, name in zip(model.input_domains, names)}


def _input_slices(data: SliceSet) -> np.ndarray:
    """The first input modality's slices ``[N, H, W]`` in unit space (2.5D inputs: the slice, not its neighbours)."""
    return as_stack(data.aligned["input"][:, :1])


def _cycle(run_dir: str | Path, direction: str, tiles: dict[str, torch.Tensor], outputs: torch.Tensor,
           first_mapping: IntensityMapping) -> dict[str, np.ndarray]:
    """Per-slice cycle error of held-out inputs through both generators (module docstring)."""
    from medgan.inference import load_model
    from medgan.inference.translate import split_domains

    back = load_model(run_dir, direction=Direction(direction).opposite.value)
    rebuilt = back.translate(back.stack(split_domains(outputs.clamp(-1, 1), back.spec, back.input_domains)))
    real = torch.cat(list(tiles.values()), dim=1)
    if rebuilt.shape != real.shape:
        raise DataError(f"the way back gives {tuple(rebuilt.shape)} for inputs {tuple(real.shape)}", str(run_dir))
    error = (rebuilt - real).abs()
    scale = (first_mapping.high - first_mapping.low) / 2.0
    return {"cycle_l1": error.mean((1, 2, 3)).numpy().astype(np.float64),
            "cycle_mae": (error[:, 0].mean((1, 2)) * scale).numpy().astype(np.float64)}


def _linear(train: SliceSet, held: SliceSet, target_mapping: IntensityMapping) -> tuple[np.ndarray, dict]:
    """The linear baseline's outputs on ``held`` and its fit on ``train`` (module docstring)."""
    x_train = _input_slices(train)
    y_unit = as_stack(train.images)
    y_train = np.asarray(train.mapping.to_physical(y_unit))
    body, _ = body_mask(y_train, y_unit, train.mapping)
    slope, intercept = fit_linear(x_train, y_train, body)
    predicted = np.clip(slope * _input_slices(held) + intercept, target_mapping.low, target_mapping.high)
    return predicted, {"slope_per_unit": slope, "intercept": intercept, "pixels": int(body.sum()),
                       "slices": len(train), "subjects": len(set(train.subjects))}


def _moments(train: SliceSet, held: SliceSet, target_mapping: IntensityMapping) -> tuple[np.ndarray, dict]:
    """The unpaired identity baseline: the first input modality linearly mapped so that its body mean and standard
    deviation match the target's, each taken from its own domain's training images (no pairing is used: the
    input's body is its own Otsu foreground, the target's its body mask)."""
    from skimage.filters import threshold_otsu

    x_train = _input_slices(train)
    y_unit = as_stack(train.images)
    y_train = np.asarray(train.mapping.to_physical(y_unit))
    y_body, _ = body_mask(y_train, y_unit, train.mapping)
    x_body = x_train > threshold_otsu(x_train)
    x_mean, x_std = float(x_train[x_body].mean()), float(x_train[x_body].std())
    y_mean, y_std = float(y_train[y_body].mean()), float(y_train[y_body].std())
    slope = y_std / max(x_std, 1e-6)
    intercept = y_mean - slope * x_mean
    predicted = np.clip(slope * _input_slices(held) + intercept, target_mapping.low, target_mapping.high)
    return predicted, {"slope_per_unit": slope, "intercept": intercept, "input_body_mean": x_mean,
                       "input_body_std": x_std, "target_body_mean": y_mean, "target_body_std": y_std}


def _distribution(outputs: torch.Tensor, targets: torch.Tensor, notes: list[str]) -> dict[str, Any] | None:
    """KID (and FID with enough images) of outputs against the held-out targets, offline features."""
    from medgan.metrics.features import DEFAULT_FEATURES, extract_features, get_extractor
    from medgan.metrics.fid import fid
    from medgan.metrics.kid import kid

    try:
        extractor = get_extractor(DEFAULT_FEATURES)
        real = extract_features(targets.float().clamp(-1, 1), extractor, what="held-out targets")
        fake = extract_features(outputs.float().clamp(-1, 1), extractor, what="outputs")
        size = min(len(real), len(fake))
        kid_mean, kid_std = kid(real, fake, subsets=KID_SUBSETS, subset_size=size)
    except DataError as error:
        notes.append(f"KID/FID not computed: {error.message}")
        return None
    result = {"kid": kid_mean, "kid_std": kid_std, "kid_subset_size": size, "features": DEFAULT_FEATURES,
              "fid": None}
    if size >= FID_MIN_IMAGES:
        result["fid"] = fid(real, fake)
    else:
        notes.append(f"FID not computed: {size} held-out images, FID needs more than the 64 feature dimensions")
    return result


def _measure(images: np.ndarray, target: np.ndarray, body: np.ndarray, mapping: IntensityMapping,
             tissues: dict[str, np.ndarray] | None, labels: np.ndarray | None, notes: list[str]) -> dict[str, np.ndarray]:
    if mapping.kind == "ct_window":  # the truth is clipped to the window: so is every method (compared runs too)
        images = np.clip(images, mapping.low, mapping.high)
    values = paired_errors(images, target, body, mapping.high - mapping.low, mapping.low)
    if tissues is not None:
        anatomy, why = anatomy_measures(images, target, mapping, tissues)
        values.update(anatomy)
        notes.extend(note for note in why if note not in notes)
        if labels is not None:
            values.update(organ_errors(images, target, labels))
    return values


def _compare_outputs(path: str | Path, direction: str, held: SliceSet, where: str) -> np.ndarray:
    """Another run's outputs on the same held-out pairs, in its own target mapping's units."""
    from medgan.inference import load_model

    config = RunDir.existing(path).read_config()
    other = load_model(path)
    if getattr(other, "directions", ()):
        other = load_model(path, direction=direction)
    if not hasattr(other, "translate"):
        raise ConfigError("--compare takes image-to-image runs", path)
    if config.data.resolution != held.images.shape[-1]:
        raise ConfigError(f"--compare: this run works at {config.data.resolution} px, the evaluated one at "
                          f"{held.images.shape[-1]} px", path)
    own = other.spec.domain(other.target).mapping
    mapping = own if own.unit == held.mapping.unit == "HU" else held.mapping
    tiles = _inputs(held, other, where)
    # Neighbour order is nested (the slice, -1, +1, -2, +2, ...): a run with context k takes the first 2k + 1 slices
    # of held-out slabs loaded with a larger context.
    wanted = 2 * getattr(other, "context", 0) + 1
    for name, tile in tiles.items():
        if other.spec.domain(name).mapping.unit == "label":
            continue
        if tile.shape[1] < wanted:
            raise ConfigError(f"--compare: this run takes {wanted} neighbouring slice(s) per input (data.context "
                              f"{other.context}) but the evaluated run's held-out inputs have {tile.shape[1]}; "
                              "evaluate the run with the larger data.context and compare the other", path)
        tiles[name] = tile[:, :wanted]
    outputs = other.translate(other.stack(tiles))[:, :1]
    return np.asarray(mapping.to_physical(as_stack(outputs)))


def evaluate_translation(run_dir: str | Path, out: str | Path, direction: str | None = None,
                         held_out: SliceSet | None = None, held_out_config: DataConfig | None = None,
                         train_pairs: SliceSet | None = None, compare: tuple[str, ...] = (),
                         max_slices: int | None = None, progress: bool = True, label: str = "GAN",
                         compare_labels: tuple[str, ...] = ()) -> dict:
    """Evaluates a translation run on held-out true pairs (module docstring); writes metrics.json and report.html.

    Args:
        run_dir: a trained unpaired run, or a paired run with input modalities.
        out: report folder.
        direction: runs that translate both ways: "a2b" or "b2a" (default: the run's own default).
        held_out: the held-out pairs already loaded (targets in ``images``, inputs as ``"input"``, ...).
        held_out_config: their data config (default: the run's sources with ``split="test"``).
        train_pairs: true pairs to fit the linear baseline on (default: the held-out sources' training split).
        compare: other runs to evaluate on the same pairs, each a row of the table.
        max_slices: evaluate at most this many slices (evenly spaced).
        progress: progress bars while loading.
        label: how the run is named in the table (its task's ``describe``).
        compare_labels: how each ``compare`` run is named (default "GAN").

    Returns:
        The metrics written to ``metrics.json``.
    """
    from medgan.inference import load_model

    started = time.perf_counter()
    out = Path(out)
    check_output_folder(out, "--out")
    model = load_model(run_dir, direction=direction)
    if not hasattr(model, "translate"):
        raise ConfigError("not an image-to-image run", run_dir)
    name = model.direction or Direction.A2B.value
    if held_out_config is None:
        raise ConfigError("name the held-out pairs (held_out_config): which sources are the target and the inputs "
                          "is the run's task's knowledge (Task.evaluate)", run_dir)
    config = held_out_config
    held = held_out if held_out is not None else load_pairs(config, progress)
    held = held.subset(_evenly(len(held), max_slices))
    tiles = _inputs(held, model, config.source)
    outputs = model.translate(model.stack(tiles))
    mapping = held.mapping
    hu = mapping.unit == "HU"
    own = model.spec.domain(model.target).mapping
    out_mapping = own if hu else mapping  # MR units differ per scan: the held-out targets' mapping for outputs
    notes: list[str] = []
    if len(model.targets) > 1:
        notes.append(f"the run outputs {' + '.join(model.targets)}; only the first ({model.target}, "
                     f"{config.source}) is measured against the truth (the cycle error uses them all)")
    if hu and own.to_dict() != mapping.to_dict():
        notes.append(f"the run's target window {own.describe()} differs from the held-out data's {mapping.describe()}")
    target_unit = as_stack(held.images)
    target = np.asarray(mapping.to_physical(target_unit))
    methods = {"gan": np.asarray(out_mapping.to_physical(as_stack(outputs[:, :1])))}
    labels = {"gan": label}
    fit: dict[str, Any] = {}
    if held.mappings.get("input") is not None:
        train_config = training_pairs_config(config) if train_pairs is None else None
        train = train_pairs if train_pairs is not None else (load_pairs(train_config, progress) if train_config
                                                             else None)
        if train is None:
            train = held
            notes.append("linear baseline fitted on the evaluated pairs themselves (no training split): optimistic")
        first_input = Path(config.domain_a[0]).name
        methods["moments"], moments_fit = _moments(train, held, mapping)
        labels["moments"] = f"identity baseline: {first_input} linearly mapped (no pairs: body mean and SD matched)"
        methods["linear"], fit = _linear(train, held, mapping)
        labels["linear"] = f"best line: {first_input} least-squares fitted on training pairs"
        if hu and held.mappings["input"].unit == "HU":
            methods["input"] = np.asarray(held.mappings["input"].to_physical(_input_slices(held)))
            labels["input"] = "input as it is"
    for index, path in enumerate(compare, start=1):
        methods[f"compare{index}"] = _compare_outputs(path, name, held, config.source)
        described = compare_labels[index - 1] if index <= len(compare_labels) else "GAN"
        labels[f"compare{index}"] = f"{described}: {Path(path).name}"
    body, region = body_mask(target, target_unit, mapping)
    tissue_labels, tissues, rule = None, None, ""
    if hu:
        tissue_labels, why = phantom_tissue_labels(held, config)
        notes += [f"tissue classes from HU thresholds: {why}"] if tissue_labels is None else []
        tissues, rule, left_out = tissue_masks(target, mapping, tissue_labels)
        notes += left_out
    timings = {"load_and_translate": time.perf_counter() - started}
    began = time.perf_counter()
    per_slice = {key: _measure(images, target, body, mapping, tissues, tissue_labels, notes)
                 for key, images in methods.items()}
    if model.directions:
        first = held.mappings.get("input") or mapping
        per_slice["gan"].update(_cycle(run_dir, name, tiles, outputs, first))
    timings["measures"] = time.perf_counter() - began
    subjects = list(held.subjects)
    summaries = {key: {"label": labels[key], **{metric: grouped_interval(array, subjects)
                                                  for metric, array in values.items()}}
                 for key, values in per_slice.items()}
    if fit:
        summaries["linear"]["fit"] = fit
        summaries["moments"]["fit"] = moments_fit
    metrics: dict[str, Any] = {
        "kind": "translation", "direction": name, "units": mapping.unit, "data_range": mapping.high - mapping.low,
        "mapping": mapping.to_dict(), "window": _window(mapping), "region": region, "tissue_rule": rule,
        "organ_labels": tissue_labels is not None, "methods": summaries, "best_classic": "linear" if fit else None,
        "held_out": {"source": config.source, "inputs": list(config.domain_a), "split": config.split,
                     "subjects": sorted(set(subjects)), "n_subjects": len(set(subjects)), "slices": len(held),
                     "description": f"{config.source} <- {' + '.join(config.domain_a)} (split {config.split})"},
        "run": {"path": str(run_dir), "checkpoint": str(getattr(model, "checkpoint", "")), "task": model.config.task,
                "inputs": list(model.input_domains), "target": model.target},
        "compare": [str(path) for path in compare],
        "distribution": _distribution(outputs[:, :1], held.images, notes),
        "per_slice": {"subjects": subjects, **{key: {m: v.tolist() for m, v in values.items()}
                                               for key, values in per_slice.items()}},
    }
    if hu and held.mappings.get("input") is not None and held.mappings["input"].unit != "HU":
        metrics["literature"] = {"body_mae_hu": list(LITERATURE_BAND_HU), "note": LITERATURE_NOTE}
    metrics["notes"] = notes
    metrics["timings_s"] = {**timings, "total": time.perf_counter() - started}
    panel = {"rows": _evenly(len(held), 4).tolist(), "label_map": False, "best_classic": metrics["best_classic"]}
    rows = panel["rows"]
    panel.update({"inputs": next(iter(tiles.values()))[rows, :1].numpy(), "target": target[rows],
                  "methods": {key: images[rows] for key, images in methods.items()},
                  "sources": [held.sources[i] for i in rows]})
    clean = json_ready(metrics)
    card = evaluation_card(run_dir, clean)
    atomic_write_files({out / "metrics.json": json.dumps(clean, indent=2, allow_nan=False) + "\n",
                        out / "report.html": render_translation_report(clean, panel, card),
                        out / CARD_NAME: card_text(card)})
    return clean


def _window(mapping: IntensityMapping) -> str:
    if mapping.kind == "ct_window":
        return (f"[{mapping.low:g}, {mapping.high:g}] HU (level {(mapping.low + mapping.high) / 2:g}, width "
                f"{mapping.high - mapping.low:g}); values outside are clipped in the truth and the outputs")
    return f"{mapping.kind} [{mapping.low:.4g}, {mapping.high:.4g}] {mapping.unit}"

