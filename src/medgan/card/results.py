"""The results that exist for a run, as entries of its synthetic-data card (``medgan.card``).

A run's results are its last in-training evaluation (``metrics.jsonl``) and every ``RESULT_FILES`` file in the run
directory or a direct sub-folder (``medgan evaluate --out RUN/eval``, ``medgan audit --out RUN/audit``,
``medgan utility --out RUN/utility``...). Only numbers and booleans are copied, never strings: result files may name
data locations and held-out subjects (``SKIPPED_RESULT_KEYS`` also leaves out per-slice, per-class and config
detail).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from medgan.run import RunDir

RESULT_FILES = ("metrics.json", "audit.json")
SKIPPED_RESULT_KEYS = frozenset({"per_slice", "per_class", "confusion", "timings_s", "config", "inputs", "run",
                                 "held_out", "label_set", "notes", "seconds"})
MAX_RESULT_VALUES = 60  # numbers copied per result file (the headline ones come first)
EVALUATION_KEYS = ("distribution.fid", "distribution.kid_mean", "distribution.precision", "distribution.recall",
                   "distribution.density", "distribution.coverage", "intensity.wasserstein_foreground",
                   "diversity.relative_diversity", "diversity.collapse", "memorization.near_copies",
                   "memorization.near_copy_fraction", "memorization.baseline_near_copy_fraction",
                   "memorization.nearest_ssim.median", "memorization.baseline_nearest_ssim.median",
                   # medgan evaluate --dims 3 (medgan.metrics.catalog.VOLUME_METRICS)
                   "volume_distribution.fid", "volume_distribution.kid_mean", "volume_diversity.relative_diversity",
                   "volume_diversity.collapse", "volume_memorization.near_copies",
                   "volume_memorization.near_copy_fraction", "volume_memorization.baseline_near_copy_fraction",
                   "volume_memorization.nearest_ssim.median", "volume_memorization.baseline_nearest_ssim.median")


def numbers_of(tree: Any, prefix: str = "", depth: int = 5) -> dict[str, float | int | bool]:
    """Dotted keys of every number and boolean in nested dicts (lists, strings and ``SKIPPED_RESULT_KEYS`` left out)."""
    found: dict[str, float | int | bool] = {}
    if not isinstance(tree, Mapping) or depth == 0:
        return found
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if key in SKIPPED_RESULT_KEYS:
            continue
        if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
            found[name] = value
        elif isinstance(value, Mapping):
            found.update(numbers_of(value, name + ".", depth - 1))
    return found


def result_kind(values: Mapping[str, Any], name: str) -> str:
    """What a result file holds, from its name and keys."""
    if "distribution" in values or "memorization" in values:
        return "evaluation"
    if "volume_distribution" in values or "volume_memorization" in values:
        return "volume_evaluation"
    if name == "audit.json" or "attacks" in values:
        return "membership_inference"
    if "n_test_subjects" in values:
        return "segmentation_utility"
    return "classification_utility" if "arms" in values else "paired_evaluation" if "methods" in values else "other"


def summarize_result(values: Mapping[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """``{kind: {"values": {dotted key: number}}}`` of a result file, headline values first (at most
    ``MAX_RESULT_VALUES`` each). A membership-inference result inside an evaluation gets its own entry."""
    kind = result_kind(values, name)
    nested = {key: value for key, value in values.items() if isinstance(value, Mapping) and "attacks" in value}
    summaries = {} if kind != "evaluation" or not nested else \
        {"membership_inference": {"values": numbers_of(next(iter(nested.values())))}}
    numbers = numbers_of({key: value for key, value in values.items() if key not in nested})
    headline = {key: numbers[key] for key in EVALUATION_KEYS if key in numbers}
    for key, value in numbers.items():
        if len(headline) >= MAX_RESULT_VALUES:
            break
        headline.setdefault(key, value)
    summaries[kind] = {"values": headline}
    inputs = values.get("inputs")
    features = inputs.get("features") if isinstance(inputs, Mapping) else values.get("features")
    if isinstance(features, str):  # "offline", "inception" or "torchscript" (never the weights' path)
        summaries[kind]["features"] = "torchscript" if features.endswith((".pt", ".pts")) else features.split(":")[0]
    return summaries


def find_results(run_dir: str | Path) -> dict[str, Any]:
    """The results that exist for a run: its last in-training evaluation and every ``RESULT_FILES`` file in the
    run directory or a direct sub-folder (not ``checkpoints/`` or ``samples/``), by kind."""
    run = RunDir(run_dir)
    results: dict[str, Any] = {}
    history = [record for record in run.read_metrics() if isinstance(record, dict)]
    if history:
        results["in_training"] = {"values": numbers_of(history[-1])}
    folders = [run.path] + sorted(entry for entry in run.path.iterdir() if entry.is_dir()
                                  and entry not in (run.checkpoints, run.samples) and not entry.name.startswith("."))
    for folder in folders:
        for name in RESULT_FILES:
            path = folder / name
            try:
                values = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                values = None  # an unreadable result file is not a result
            for kind, summary in (summarize_result(values, name) if isinstance(values, dict) else {}).items():
                key, count = kind, 2
                while key in results:
                    key, count = f"{kind}_{count}", count + 1
                results[key] = summary
    return results
