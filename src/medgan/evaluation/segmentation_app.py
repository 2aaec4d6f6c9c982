"""The ``medgan segutility`` application: a mask-to-image run in, the segmentation utility experiment
(``medgan.evaluation.segmentation``) run, ``metrics.json`` and ``segmentation.md`` written out (both or neither).

The real training pairs are the run's own data with ``split="train"``; the held-out pairs its ``split="test"``
(held-out phantom patients, the held-out MNI152 slab) or the targets given as ``test`` (``held_out_config``).
A held-out slice that is also a training slice is refused. The synthetic pairs of a seed are the real training
label maps, deformed with that seed (``layout_maps``: random rotation, zoom, optional flip and elastic
deformation with MONAI's ``Rand2DElastic``, nearest-neighbour so labels stay labels) unless
``config.layouts`` is off, translated by the run into images.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.data.datasets import SliceSet
from medgan.data.degrade import parse_degradation
from medgan.data.pairs import one_hot
from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.evaluation.paired import held_out_config, load_held_out
from medgan.evaluation.segmentation import (ARMS, LABEL_SETS, LabelSet, SegmentationConfig, SegmentationPairs,
                                            label_set_for, labels_from_one_hot, run_segmentation)
from medgan.run import check_output_folder
from medgan.utils import atomic_write_files

ARM_TITLES = {"real": "(a) real", "real+synthetic": "(b) real + synthetic", "synthetic": "(c) synthetic only"}
DIFFERENCE_TITLES = {"real+synthetic - real": "(b) - (a)", "synthetic - real": "(c) - (a)"}


def mask_to_image_model(run_dir: str | Path) -> Any:
    """The run's ``Translator``, checked to render label maps (``data.degrade=mask``, one label-map input).

    Raises:
        MedganError: not a run, not an image-to-image run, or an image-to-image run of another kind.
    """
    from medgan.inference import load_model

    model = load_model(run_dir)
    if not hasattr(model, "translate"):
        raise CheckpointError(f"not a mask-to-image run (task {model.config.task}); medgan segutility needs a run "
                              "trained with --task paired --degrade mask", run_dir)
    degrade = model.config.data.degrade
    if not degrade or parse_degradation(degrade).name != "mask" or tuple(model.input_domains) != ("input",):
        what = f"data.degrade is {degrade!r}" if degrade else "its inputs are images"
        raise ConfigError(f"not a mask-to-image run ({what}); medgan segutility needs a run trained with "
                          "--degrade mask", run_dir)
    return model


def segmentation_pairs(data: SliceSet, labels: LabelSet) -> SegmentationPairs:
    """Real images with their label maps (from the one-hot input domain) grouped into ``labels``' classes."""
    return SegmentationPairs(data.images.float(), labels.group(labels_from_one_hot(data.aligned["input"])),
                             list(data.subjects))


def layout_maps(maps: torch.Tensor, config: SegmentationConfig, seed: int) -> torch.Tensor:
    """Label maps ``[N, H, W]`` (int64) with new layouts: per map a random rotation and zoom, an elastic
    deformation (control points every quarter of the side) and, with ``layout_flip``, a left-right flip."""
    from monai.transforms import Rand2DElastic

    side = maps.shape[-1]
    magnitude = config.layout_elastic * side / 64  # the setting is in px per 64 px, so layouts scale with size
    transform = Rand2DElastic(spacing=max(2, side // 4), magnitude_range=(0.0, magnitude), prob=1.0,
                              rotate_range=math.radians(config.layout_rotate_degrees),
                              scale_range=config.layout_scale, mode="nearest", padding_mode="zeros")
    transform.set_random_state(seed=seed)  # its own NumPy stream: no global RNG is touched
    flips = np.random.default_rng(seed).random(len(maps)) < 0.5
    out = []
    for index, layout in enumerate(maps):
        moved = torch.as_tensor(np.asarray(transform(layout[None].float().numpy())))[0]
        out.append(moved.flip(-1) if config.layout_flip and flips[index] else moved)
    return torch.stack(out).round().to(torch.int64) if out else maps.clone()


def synthetic_pairs(model: Any, maps: torch.Tensor, labels: LabelSet, config: SegmentationConfig,
                    seed: int) -> SegmentationPairs:
    """``config.synthetic_factor`` synthetic pairs per training label map: the maps (new layouts unless
    ``config.layouts`` is off, drawn with ``seed``) translated by ``model`` into images."""
    channels = model.in_channels
    layouts = []
    for copy in range(config.synthetic_factor):
        layouts.append(layout_maps(maps, config, seed * 1000 + copy) if config.layouts else maps)
    layouts_all = torch.cat(layouts)
    images = model.translate(one_hot(layouts_all[:, None].float(), channels))[:, :1].clamp(-1, 1)
    return SegmentationPairs(images.float(), labels.group(layouts_all),
                             [f"synthetic-{index}" for index in range(len(layouts_all))])


def _check_disjoint(train: SliceSet, test: SliceSet) -> None:
    shared = set(train.sources) & set(test.sources)
    if shared:
        raise DataError(f"{len(shared)} held-out slice(s) are also training slices (e.g. {sorted(shared)[0]}); "
                        "give held-out data the run never trained on")


def run_segmentation_utility(run_dir: str | Path, out: str | Path, seeds: int = 5, epochs: int | None = None,
                             config: SegmentationConfig | None = None, test: str | None = None,
                             label_set: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Runs the segmentation utility experiment of a mask-to-image run; writes metrics.json and segmentation.md.

    Args:
        run_dir: a run trained with ``--task paired --degrade mask``.
        out: output folder (created); both files are written, or neither.
        seeds: runs per arm (overrides ``config.seeds``).
        epochs: passes over the real training set per run (None = ``config.epochs``).
        config: training, layout and summary settings.
        test: held-out targets (None = the run's own source, ``split="test"``).
        label_set: a key of ``LABEL_SETS`` (None = ``label_set_for`` the run's source).
        progress: progress bars.

    Returns:
        ``run_segmentation``'s result plus ``run``, ``label_set``, ``held_out`` and ``test_seen_by_generator``,
        as written to ``metrics.json``.

    Raises:
        MedganError: not a mask-to-image run, unreadable data, held-out slices that are training slices, a
            target class missing from the data, an unknown label set or an invalid setting.
    """
    out = Path(out)
    check_output_folder(out, "--out")  # before the slow part
    config = replace(config or SegmentationConfig(), seeds=seeds, **({} if epochs is None else {"epochs": epochs}))
    config.validate()
    if label_set is not None and label_set not in LABEL_SETS:
        raise ConfigError(f"unknown label set {label_set!r}; choose one of: {', '.join(LABEL_SETS)}")
    model = mask_to_image_model(run_dir)
    data = model.config.data
    labels = LABEL_SETS[label_set] if label_set else label_set_for(data.source)
    held_out = held_out_config(data, test)
    train_set = load_held_out(replace(data, split="train"), progress)
    test_set = load_held_out(held_out, progress)
    _check_disjoint(train_set, test_set)
    for role, loaded in (("training", train_set), ("held-out", test_set)):
        if loaded.aligned.get("input") is None or loaded.aligned["input"].shape[1] != model.in_channels:
            raise DataError(f"the {role} data has no {model.in_channels}-channel label-map input like the run's",
                            held_out.source)
    maps = labels_from_one_hot(train_set.aligned["input"])
    result = run_segmentation(segmentation_pairs(train_set, labels), segmentation_pairs(test_set, labels),
                              lambda seed: synthetic_pairs(model, maps, labels, config, seed), labels.class_names,
                              config, progress)
    result["run"] = {"path": str(run_dir), "checkpoint": str(getattr(model, "checkpoint", "")),
                     "source": data.source, "resolution": data.resolution,
                     "options": dict(model.config.options)}
    result["label_set"] = {"name": labels.name, "description": labels.description,
                           "classes": {name: list(values) for name, values in labels.classes}}
    result["held_out"] = {"description": f"{held_out.source} (split {held_out.split})",
                          "subjects": sorted(set(test_set.subjects)), "slices": len(test_set)}
    # The GAN trained on data.split; "all" includes the held-out subjects, so the synthetic arms may be optimistic.
    result["test_seen_by_generator"] = test is None and data.split == "all"
    table = format_segmentation(result)
    atomic_write_files({out / "metrics.json": json.dumps(result, indent=2, allow_nan=False) + "\n",
                        out / "segmentation.md": table + "\n"})
    return result


# --------------------------------------------------------------------------------------------------------
# the table


def _cell(summary: dict[str, Any], signed: bool = False) -> str:
    mean = f"{summary['mean']:+.3f}" if signed else f"{summary['mean']:.3f}"
    if summary["ci_low"] is None:
        return mean
    return f"{mean} [{summary['ci_low']:+.3f}, {summary['ci_high']:+.3f}]" if signed else \
        f"{mean} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


def format_segmentation(result: dict[str, Any]) -> str:
    """The result as a markdown table: Dice per class and mean, per arm and paired differences, 95% intervals."""
    names = result["class_names"]
    level = round(100 * result["config"]["confidence"])
    lines = [f"Segmentation utility: Dice on {result['n_test']} held-out real slices of {result['n_test_subjects']} "
             f"subject(s), {result['config']['seeds']} seed(s), mean [{level}% t-interval]",
             "",
             "| training data | mean Dice | " + " | ".join(names) + " |",
             "|---" * (len(names) + 2) + "|"]
    for arm in ARMS:
        entry = result["arms"][arm]
        cells = [_cell(entry["mean_dice"])] + [_cell(entry["per_class"][name]) for name in names]
        lines.append(f"| {ARM_TITLES[arm]} | " + " | ".join(cells) + " |")
    for key, title in DIFFERENCE_TITLES.items():
        entry = result["differences"][key]
        cells = [_cell(entry["mean_dice"], True)] + [_cell(entry["per_class"][name], True) for name in names]
        lines.append(f"| {title}, paired | " + " | ".join(cells) + " |")
    config = result["config"]
    layouts = "deformed label maps (new layouts)" if config["layouts"] else "the training label maps as they are"
    lines += ["", f"Training: {result['n_train']} real pairs, {result['n_synthetic']} synthetic pairs per seed "
                  f"({layouts}), {result['steps_per_run']} steps per run for every arm."]
    if "label_set" in result:
        lines.append(f"Classes: {result['label_set']['description']}.")
    if "held_out" in result:
        lines.append(f"Held out: {result['held_out']['description']}; never training slices.")
    if result.get("test_seen_by_generator"):
        lines.append("Note: the GAN trained on every split (data.split all), so it saw the held-out subjects.")
    return "\n".join(lines)


__all__ = ["format_segmentation", "layout_maps", "mask_to_image_model", "run_segmentation_utility",
           "segmentation_pairs", "synthetic_pairs"]
