"""The true pairs a modality-translation run is evaluated on, its baseline's training pairs, and phantom labels.

A translation run maps input modalities to a target; which of the run's sources are the target and the inputs
(for each direction of a two-way run) is its task's knowledge, handed in here. True pairs come from:

* the run's embedded sources (the phantom modalities) with ``split="test"``: held-out patients rendered in every
  modality, slice-aligned (``medgan.data.modalities.load_modality_pairs``); the linear baseline is fitted on the
  same sources' ``split="train"`` pairs;
* a user's registered pairs: ``real`` (the target folder) and ``inputs`` (one folder per input modality, in the
  run's order), matched by file name.

``phantom_tissue_labels`` gives the phantom's organ labels tile-aligned with held-out CT targets: the labels of
the rendered slices (``phantom_modalities``) go through the same slicing as the images, and are used only when the
re-sliced CT equals the held-out targets.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet
from medgan.errors import ConfigError
from medgan.evaluation.paired_regions import phantom_labels

PHANTOM_CT = {"phantom-ct": "ct", "phantom-ct-unenhanced": "ct-unenhanced"}
TILE_NAME = re.compile(r"phantom-[a-z0-9-]+/(phantom-\d+)/z([+-]?\d+)mm")


def _embedded(sources: tuple[str, ...]) -> bool:
    from medgan.data.sources import SOURCES

    return all(source in SOURCES for source in sources)


def held_out_pairs_config(data: DataConfig, target: str, sources: tuple[str, ...], real: str | None = None,
                          inputs: tuple[str, ...] = ()) -> DataConfig:
    """The data config of the held-out true pairs (module docstring); ``load_pairs`` reads it.

    Args:
        data: the run's data config.
        target: the run's source of the target modality (in the evaluated direction).
        sources: the run's sources of the input modalities, in the model's order.
        real: a target folder of the user's held-out pairs (None: the run's own sources, their test split).
        inputs: with ``real``, one input folder per input modality, matched by file name.

    Raises:
        ConfigError: a run on files without ``real`` and ``inputs``, or ``real`` without ``inputs``.
    """
    if real is None or real == target:
        if inputs:
            raise ConfigError("--inputs needs --real: the held-out target folder they are matched to", inputs[0])
        if not _embedded((target, *sources)):
            raise ConfigError("this run was trained on files: give held-out true pairs with --real TARGET_FOLDER "
                              "--inputs INPUT_FOLDER [INPUT_FOLDER ...] (matched by file name)", target)
        return replace(data, source=target, domain_a=sources, split="test", input=None, pairs=None, degrade=None)
    if len(inputs) != len(sources):
        raise ConfigError(f"give one --inputs folder per input modality of this direction ({len(sources)}: "
                          f"{', '.join(sources)}), matched by file name to the targets in --real", real)
    return replace(data, source=real, domain_a=tuple(inputs), split="all", input=None, pairs=None, degrade=None)


def load_pairs(config: DataConfig, progress: bool = True) -> SliceSet:
    """True pairs: targets in ``images``, input modalities in ``aligned`` as ``"input"``, ``"input2"``, ..."""
    from medgan.data.modalities import load_modality_pairs
    from medgan.data.pipeline import load_slices

    return load_modality_pairs(config, load_slices, progress)


def training_pairs_config(held_out: DataConfig) -> DataConfig | None:
    """The same sources' training pairs (embedded sources with a test split), or None for user pairs."""
    if held_out.split != "test":
        return None
    return replace(held_out, split="train")


def phantom_tissue_labels(data: SliceSet, config: DataConfig) -> tuple[np.ndarray | None, str]:
    """Organ labels ``[N, H, W]`` aligned with held-out phantom CT targets, or None and why not."""
    if config.source == "ct-phantom":
        return phantom_labels(data, config)
    if config.source not in PHANTOM_CT:
        return None, "organ labels are known for the phantom's CT sources only"
    from medgan.data import Domain, aligned_slices_from_volumes
    from medgan.data.phantom.modalities import phantom_modalities
    from medgan.data.phantom.sources import render_size, slice_volume

    modality = PHANTOM_CT[config.source]
    rendered = phantom_modalities(config.split, render_size(config.resolution), (modality,))
    index = {(patient, round(z)): i for i, (patient, z) in enumerate(zip(rendered.patients, rendered.heights))}
    groups = []
    for source in data.sources:
        match = TILE_NAME.search(source)
        position = index.get((match.group(1), int(match.group(2)))) if match else None
        if position is None:
            return None, f"held-out tile {source} is not one of the rendered phantom slices"
        name, patient = match.group(0), match.group(1)
        groups.append({"image": slice_volume(rendered.images[modality][position], rendered.pixel_spacing_mm, name,
                                             patient),
                       "labels": slice_volume(rendered.labels[position].astype(np.float32),
                                              rendered.pixel_spacing_mm, name, patient)})
    plain = replace(config, domain_a=(), input=None, pairs=None, degrade=None)
    tiles = aligned_slices_from_volumes(groups, plain, {"image": Domain(), "labels": Domain(label_map=True)})
    if tiles.images.shape != data.images.shape or (tiles.images - data.images).abs().max() > 1e-3:
        return None, "re-sliced phantom slices differ from the held-out targets"
    return tiles.aligned["labels"][:, 0].numpy().round().astype(np.int64), ""
