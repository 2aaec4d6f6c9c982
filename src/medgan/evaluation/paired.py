"""Evaluation of paired (image-to-image) runs against classic baselines, in physical units, on held-out subjects.

``evaluate_paired(run_dir, test_data, out)`` translates held-out input tiles with the run's ``Translator``, runs
the classic baselines that apply to the run's ``data.degrade`` kind on the same inputs
(``medgan.evaluation.paired_baselines``), maps everything to physical units with the run's data spec (the
target domain's mapping for outputs and targets, the input domain's for inputs), and measures each method
against the target in the regions of ``medgan.evaluation.paired_regions``:

* MAE (physical units), PSNR and SSIM (``medgan.metrics.paired.paired_errors``) inside the body, or the hole
  for inpainting; PSNR's peak and SSIM's L are the target mapping's range (CT: the window width);
* CT only: noise std in a uniform region, the NPS of one square per slice pooled over slices and its distance
  to the target's NPS, and lesion CNR (phantom only) with its ratio to the target's;
* mask-to-image runs: FID/KID of outputs against targets (``medgan.metrics.training_score``, offline features).

The Gaussian baseline picks its sigma on the first ``TUNING_SLICES`` held-out slices: a one-parameter fit on
evaluated slices, which can only favour that baseline, never the GAN.

Per-slice values are summarised as means with 95% bootstrap intervals that resample subjects
(``grouped_interval``). The held-out set is the run's own data config with ``split="test"`` unless the caller
gives one; its subjects are listed in ``metrics.json`` and the report. ``metrics.json`` and ``report.html`` are
written together, or neither.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.card import CARD_NAME, card_text, evaluation_card
from medgan.config import DataConfig
from medgan.data.datasets import SliceSet
from medgan.data.intensity import IntensityMapping
from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.evaluation.paired_baselines import APPLICABLE, BASELINES, BaselineContext, degrade_kind, method_label
from medgan.evaluation.paired_regions import Regions, body_mask, ct_regions, phantom_labels
from medgan.evaluation.evaluate import _json_ready as json_ready  # one NaN/NumPy -> JSON rule for both reports
from medgan.evaluation.paired_report import format_paired_table, render_paired_report
from medgan.metrics.paired import (as_stack, grouped_interval, lesion_cnr, noise_power_spectrum, noise_std,
                                   nps_distance, paired_errors)
from medgan.run import RunDir, check_output_folder
from medgan.utils import atomic_write_files

__all__ = ["evaluate_paired", "evaluate_paired_run", "format_paired_table", "held_out_config"]

TUNING_SLICES = 4


# --------------------------------------------------------------------------------------------------------
# inputs


def held_out_config(data: DataConfig, real: str | None) -> DataConfig:
    """The data config of the held-out set: the run's own source with ``split="test"`` (``real`` None or the
    run's source), a pairs CSV, or, for runs that derive their inputs (``data.degrade``), other targets."""
    if real is None or real == data.source or (Path(real).expanduser().resolve() == Path(data.source).expanduser().resolve()):
        return replace(data, split="test")
    if real.lower().endswith(".csv"):
        return replace(data, source=real, pairs=real, input=None, degrade=None, split="all")
    if data.degrade:
        return replace(data, source=real, split="all")
    raise ConfigError("this run pairs images from two folders; name the held-out pairs with a CSV of input,target "
                      "columns, or the run's own source for its test split", real)


def load_held_out(config: DataConfig, progress: bool = True) -> SliceSet:
    """Loads the held-out pairs with the data pipeline (``medgan.data.load_slices``)."""
    from medgan.data import load_slices

    return load_slices(config, progress=progress)


def _evenly(count: int, limit: int | None) -> np.ndarray:
    if limit is None or limit >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max(1, limit)).round().astype(np.int64))


def stacked_inputs(data: SliceSet, input_domains: tuple[str, ...], where: str) -> torch.Tensor:
    """The model's input: the held-out aligned domains stacked on channels in the run's order."""
    missing = [name for name in input_domains if name not in data.aligned]
    if missing:
        raise DataError(f"held-out data has no {missing[0]!r} images (it has: {', '.join(data.aligned) or 'none'}); "
                        "it must be paired like the run's training data", where)
    return torch.cat([data.aligned[name].float() for name in input_domains], dim=1)


# --------------------------------------------------------------------------------------------------------
# the evaluation


def evaluate_paired(run_dir: str | Path, test_data: DataConfig | None, out: str | Path, max_slices: int | None = None,
                    progress: bool = True, data: SliceSet | None = None, label: str = "GAN") -> dict:
    """Evaluates a paired run on held-out slices against the classic baselines; writes metrics.json and report.html.

    Args:
        run_dir: a trained image-to-image run.
        test_data: the held-out data config (default: the run's own data config with ``split="test"``).
        out: report folder.
        max_slices: evaluate at most this many slices (evenly spaced over the held-out set).
        progress: progress bars while loading.
        data: the held-out pairs, already loaded (then ``test_data`` only describes them).
        label: how the run is named in the table (its task's ``describe``).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        MedganError: not an image-to-image run, held-out data without the run's input domains, bad paths.
    """
    from medgan.inference import load_model

    started = time.perf_counter()
    out = Path(out)
    check_output_folder(out, "--out")
    model = load_model(run_dir)
    if not hasattr(model, "translate"):
        raise CheckpointError("not an image-to-image run (medgan evaluate --real/--fake compares image sets)", run_dir)
    config = test_data if test_data is not None else replace(model.config.data, split="test")
    held_out = data if data is not None else load_held_out(config, progress)
    held_out = held_out.subset(_evenly(len(held_out), max_slices))
    inputs = stacked_inputs(held_out, tuple(model.input_domains), config.source)
    degrade = model.config.data.degrade
    outputs = {"gan": model.translate(inputs)[:, :1]}
    timings = {"load_and_translate": time.perf_counter() - started}
    metrics = measure(held_out, inputs, outputs["gan"], model.spec, model.input_domains, degrade, config, timings)
    metrics["run"] = {"path": str(run_dir), "checkpoint": str(getattr(model, "checkpoint", "")),
                      "task": model.config.task, "options": dict(model.config.options)}
    metrics["methods"]["gan"]["label"] = label
    metrics["held_out"]["description"] = (f"{config.source} (split {config.split})" if data is None
                                          else f"{config.source}, given as loaded pairs")
    metrics["timings_s"]["total"] = time.perf_counter() - started
    panel = metrics.pop("_panel")
    clean = json_ready(metrics)
    card = evaluation_card(run_dir, clean)  # the run's data card with this evaluation's numbers
    atomic_write_files({out / "metrics.json": json.dumps(clean, indent=2, allow_nan=False) + "\n",
                        out / "report.html": render_paired_report(clean, panel, card),
                        out / CARD_NAME: card_text(card)})
    return clean


def evaluate_paired_run(run_dir: str | Path, real: str | None, out: str | Path, max_slices: int | None = None,
                        progress: bool = True, label: str = "GAN") -> dict:
    """``medgan evaluate --fake RUN --real DATA`` for a paired run: ``evaluate_paired`` on ``held_out_config``."""
    data = held_out_config(RunDir.existing(run_dir).read_config().data, real)
    return evaluate_paired(run_dir, data, out, max_slices=max_slices, progress=progress, label=label)


def measure(data: SliceSet, inputs: torch.Tensor, gan: torch.Tensor, spec: Any, input_domains: tuple[str, ...],
            degrade: str | None, config: DataConfig, timings: dict[str, float]) -> dict:
    """Every method's per-slice measures and their subject-grouped summaries (see the module docstring)."""
    mapping = spec.mapping
    target_unit = as_stack(data.images)
    target = np.asarray(mapping.to_physical(target_unit))
    first = input_domains[0]
    input_mapping = data.mappings.get(first) and spec.domain(first).mapping
    centre = data.aligned[first][:, :1]  # a 2.5D input's slice itself (its neighbours follow on the channels)
    physical_input = np.asarray(input_mapping.to_physical(as_stack(centre))) if input_mapping else None
    holes = as_stack(data.aligned["mask"]) > 0 if "mask" in data.aligned and "mask" not in data.mappings else None
    body, rule = body_mask(target, target_unit, mapping)
    kind = degrade_kind(degrade)
    if kind == "inpaint" and holes is not None:
        regions = Regions(holes, "the hole of each slice (mask domain)")
    else:
        regions = Regions(body, rule)
    ct = mapping.kind == "ct_window" or mapping.unit == "HU"
    if ct:
        labels, why = phantom_labels(data, config)
        regions = ct_regions(regions, target, body, labels)
        regions.notes += [f"lesion CNR skipped: {why}"] if labels is None else []
    context = BaselineContext(mapping.high - mapping.low, mapping.low, holes,
                              (physical_input[:TUNING_SLICES] if physical_input is not None else target[:0],
                               target[:TUNING_SLICES], regions.evaluation[:TUNING_SLICES]))
    methods: dict[str, np.ndarray] = {}
    names = APPLICABLE.get(kind, ()) if physical_input is not None else ()
    for name in names:
        began = time.perf_counter()
        methods[name] = BASELINES.get(name)(physical_input, context)
        timings[f"baseline_{name}"] = time.perf_counter() - began
    methods["gan"] = np.asarray(mapping.to_physical(as_stack(gan)))
    began = time.perf_counter()
    result = _scores(methods, target, regions, data.subjects, mapping, context, ct, spec.spacing)
    timings["measures"] = time.perf_counter() - began
    result["degrade"] = degrade
    result["held_out"] = {"source": config.source, "split": config.split, "subjects": sorted(set(data.subjects)),
                          "n_subjects": len(set(data.subjects)), "slices": len(data)}
    for name, entry in result["methods"].items():
        entry["label"] = method_label(name, degrade)
        entry.update(context.chosen.get(name, {}))
    if kind == "mask":
        result["distribution"] = _distribution(gan, data.images, result["notes"])
    result["timings_s"] = timings
    result["_panel"] = _panel(data, inputs, methods, target, result, label_map=input_mapping is None)
    return result


def _scores(methods: dict[str, np.ndarray], target: np.ndarray, regions: Regions, subjects: list[str],
            mapping: IntensityMapping, context: BaselineContext, ct: bool, spacing: tuple[float, float]) -> dict:
    per_slice: dict[str, dict[str, list]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    reference: dict[str, Any] = {}
    reference_nps = None
    if ct and regions.uniform is not None:
        reference["noise_std"] = noise_std(target, regions.uniform)
        reference_nps = _nps(target, regions, spacing)
        reference["nps"] = _nps_summary(reference_nps)
        if regions.lesion is not None:
            reference["cnr"] = lesion_cnr(target, regions.lesion, regions.background)
    for name, images in methods.items():
        values = paired_errors(images, target, regions.evaluation, context.data_range, context.low)
        extra: dict[str, Any] = {}
        if ct and regions.uniform is not None:
            values["noise_std"] = noise_std(images, regions.uniform)
            spectrum = _nps(images, regions, spacing)
            if spectrum is not None and reference_nps is not None:
                extra["nps"] = {**_nps_summary(spectrum), **nps_distance(spectrum, reference_nps)}
            if regions.lesion is not None:
                values["cnr"] = lesion_cnr(images, regions.lesion, regions.background)
                with np.errstate(invalid="ignore", divide="ignore"):
                    values["cnr_ratio"] = values["cnr"] / reference["cnr"]
        per_slice[name] = {key: array.tolist() for key, array in values.items()}
        summaries[name] = {key: grouped_interval(array, subjects) for key, array in values.items()} | extra
    target_summary = {key: grouped_interval(value, subjects) for key, value in reference.items() if key != "nps"}
    if "nps" in reference:
        target_summary["nps"] = reference["nps"]
    classic = [name for name in methods if name not in ("gan", "input")] or [n for n in methods if n != "gan"]
    best = max(classic, key=lambda n: summaries[n]["ssim"]["mean"] or -np.inf) if classic else None
    return {"kind": "image-to-image", "units": mapping.unit, "data_range": context.data_range, "mapping": mapping.to_dict(),
            "region": regions.description, "uniform_region": regions.uniform_description,
            "nps_roi_px": regions.roi_size, "methods": summaries, "target": target_summary, "best_classic": best,
            "per_slice": {"subjects": list(subjects), **per_slice}, "notes": list(regions.notes)}


def _nps(images: np.ndarray, regions: Regions, spacing: tuple[float, float]):
    if not regions.nps_corners:
        return None
    return noise_power_spectrum(images, regions.roi_size, regions.nps_corners, spacing)


def _nps_summary(spectrum) -> dict[str, Any]:
    if spectrum is None:
        return {}
    return {"mean_frequency": spectrum.mean_frequency, "peak_frequency": spectrum.peak_frequency,
            "variance": spectrum.variance, "rois": spectrum.rois, "frequencies": spectrum.frequencies.tolist(),
            "radial": spectrum.radial.tolist()}


def _distribution(gan: torch.Tensor, targets: torch.Tensor, notes: list[str]) -> dict[str, float] | None:
    """FID/KID of outputs against targets (mask-to-image and other runs without a classic baseline)."""
    from medgan.metrics.suite import training_score

    try:
        scores = training_score(targets, gan)
    except DataError as error:
        notes.append(f"FID/KID not computed: {error.message}")
        return None
    return {"fid": scores["fid"], "kid": scores["kid"], "features": "offline"}


def _panel(data: SliceSet, inputs: torch.Tensor, methods: dict[str, np.ndarray], target: np.ndarray,
           metrics: dict, label_map: bool) -> dict[str, Any]:
    """The images of the report's panel: a few evenly spaced slices, every method in physical units."""
    rows = _evenly(len(data), 4)
    return {"rows": rows.tolist(), "inputs": inputs[rows, :1].numpy(), "target": target[rows],
            "methods": {name: images[rows] for name, images in methods.items()},
            "best_classic": metrics["best_classic"], "sources": [data.sources[i] for i in rows],
            "label_map": label_map}
