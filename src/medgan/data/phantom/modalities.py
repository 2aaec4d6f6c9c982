"""The phantom in several modalities: the same slices as T1- and T2-weighted MR and as portal-venous and unenhanced CT.

Simulated data, not patient data. A phantom patient's anatomy is fixed by its seed, so each slice (patient,
height) is painted once and given four looks:

* ``"ct"``: the portal-venous CT at routine dose (``render_patient``; the very slices of ``"ct-phantom"``);
* ``"t1"``, ``"t2"``: MR derived from that painting's tissue map (``medgan.data.phantom.mr``), no re-render;
* ``"ct-unenhanced"``: the same patient painted with unenhanced tissue values and scanned (same shapes,
  lesions, texture and labels; liver, kidneys and vessels without iodine).

``phantom_modalities`` gives them in physical units (HU, MR arbitrary units) with the tissue label map of
every slice, for evaluation on true pairs. The embedded sources ``"phantom-t1"``, ``"phantom-t2"``,
``"phantom-ct"`` and ``"phantom-ct-unenhanced"`` give them as ``SliceSet``s: ``data.split`` picks the
patients (``PAIRED_SPLITS``: ``"train"`` = the ``"ct-phantom"`` patients, ``"test"`` = 16 held-out ones,
``"all"``) and every source of one split holds the same (patient, height) slices in the same order, so two
modalities of one split are aligned slice by slice; disjoint patients per domain come from different splits
(or from ``data.disjoint``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from medgan.config import DataConfig
from medgan.data.datasets import SliceBuilder, SliceSet, slices_from_volumes
from medgan.data.intensity import combine_mappings, mri_mapping
from medgan.data.phantom.acquisition import FOV_MM
from medgan.data.phantom.anatomy import patient_anatomy
from medgan.data.phantom.cases import patient_id, patient_seed, render_patient
from medgan.data.phantom.mr import render_mr, tissue_map
from medgan.data.phantom.pairs import PAIRED_SPLITS
from medgan.data.phantom.sources import PHANTOM_SLICES_PER_PATIENT, render_size, slice_heights, slice_volume
from medgan.data.readers import progress_over
from medgan.data.sources import SOURCES
from medgan.errors import ConfigError

MR_MODALITIES = ("t1", "t2")
CT_MODALITIES = ("ct", "ct-unenhanced")
MODALITIES = MR_MODALITIES + CT_MODALITIES
UNITS = {"t1": "a.u.", "t2": "a.u.", "ct": "HU", "ct-unenhanced": "HU"}
SOURCE_PREFIX = "phantom-"  # the source of modality m is "phantom-" + m


@dataclass(frozen=True)
class PhantomModalities:
    """Phantom slices in several modalities with their label maps (read-only arrays).

    Attributes:
        images: per modality, float32 ``[N, S, S]`` in physical units (``UNITS``: HU for CT, arbitrary
            non-negative units for MR); slice ``i`` of every modality is the same patient and height.
        labels: uint8 ``[N, S, S]`` tissue labels (indices into ``ORGANS``), the same for every modality.
        patients: patient id per slice (the subject key).
        heights: slice height per slice, mm from the liver hilum.
        pixel_spacing_mm: pixel size.
        noise_sigma: per MR modality, float32 ``[N]``: the Rician noise sigma of each slice in its units.
    """

    images: dict[str, np.ndarray]
    labels: np.ndarray
    patients: tuple[str, ...]
    heights: tuple[float, ...]
    pixel_spacing_mm: float
    noise_sigma: dict[str, np.ndarray] = field(default_factory=dict)


def phantom_modalities(
    split: str = "train",
    size: int = 128,
    modalities: Sequence[str] = MODALITIES,
    patients: int | None = None,
    progress: bool = False,
) -> PhantomModalities:
    """The slices of a split's patients in ``modalities``, with their labels; rendered once per process.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"`` (``PAIRED_SPLITS``: train = the ``"ct-phantom"``
            patients, seed 0, 0-31; test = 16 held-out patients, seed 2).
        size: render size in pixels over the 400 mm field of view (``sources.render_size``).
        modalities: any of ``MODALITIES``. "ct", "t1" and "t2" share one rendering; "ct-unenhanced" paints
            and scans each slice again (about 0.07 s a slice at 128 px, 0.4 s at 256 px).
        patients: at most this many patients of each patient set (all by default; fewer for quick tests).
        progress: a progress bar over the renders.

    Raises:
        ConfigError: an unknown split or modality.
    """
    if split not in PAIRED_SPLITS:
        raise ConfigError(f"config key 'data.split' is {split!r}; the phantom modalities have: train, test, all")
    unknown = [name for name in modalities if name not in MODALITIES]
    if unknown or not modalities:
        raise ConfigError(f"unknown phantom modality {unknown[0] if unknown else None!r}; choose from {', '.join(MODALITIES)}")
    images, sigmas, labels = {}, {}, None
    if any(name != "ct-unenhanced" for name in modalities):
        portal = _portal_render(split, size, patients, progress)
        labels = portal.labels
        images.update({name: portal.images[name] for name in modalities if name in portal.images})
        sigmas.update({name: portal.noise_sigma[name] for name in modalities if name in portal.noise_sigma})
    if "ct-unenhanced" in modalities:
        unenhanced = _unenhanced_render(split, size, patients, progress)
        images["ct-unenhanced"] = unenhanced.images["ct-unenhanced"]
        labels = unenhanced.labels if labels is None else labels
    jobs = _jobs(split, patients)
    names = tuple(patient_id(patient) for patient, _ in jobs)
    return PhantomModalities(
        {name: images[name] for name in modalities}, labels, names, tuple(z for _, z in jobs), FOV_MM / size, sigmas
    )


def _jobs(split: str, patients: int | None) -> list[tuple[int, float]]:
    """(patient seed, height) of every slice of a split, in the order of ``phantom_pairs`` and ``"ct-phantom"``."""
    seeds = [patient_seed(seed, index) for seed, count in PAIRED_SPLITS[split]
             for index in range(count if patients is None else min(count, patients))]
    return [(patient, float(z)) for patient in seeds for z in slice_heights(patient, PHANTOM_SLICES_PER_PATIENT)]


def _read_only(stack: list[np.ndarray], dtype: type) -> np.ndarray:
    array = np.stack(stack).astype(dtype)
    array.flags.writeable = False  # shared by every caller through the cache
    return array


@functools.lru_cache(maxsize=4)
def _portal_render(split: str, size: int, patients: int | None, progress: bool) -> PhantomModalities:
    """Portal-venous CT at routine dose, and T1/T2 MR from the same painting, of every slice of a split."""
    stacks: dict[str, list[np.ndarray]] = {"ct": [], "t1": [], "t2": []}
    sigmas: dict[str, list[float]] = {"t1": [], "t2": []}
    labels = []
    for patient, z in progress_over(_jobs(split, patients), progress, "rendering phantom CT and MR", unit="slice"):
        # The call of phantom_slices ("ct-phantom") and phantom_pairs: the same slice, noise included.
        case = render_patient(patient, size, 1.0, n_lesions=(0, 2), z_mm=z)
        stacks["ct"].append(case.image_hu)
        labels.append(case.organ_labels)
        tissues = tissue_map(case, patient_anatomy(patient, "portal").tissue_hu)
        for name, (image, sigma) in render_mr(tissues, patient, z, case.pixel_spacing_mm, MR_MODALITIES).items():
            stacks[name].append(image)
            sigmas[name].append(sigma)
    return PhantomModalities(
        {name: _read_only(stack, np.float32) for name, stack in stacks.items()},
        _read_only(labels, np.uint8),
        (),
        (),
        FOV_MM / size,
        {name: _read_only(values, np.float32) for name, values in sigmas.items()},
    )


@functools.lru_cache(maxsize=4)
def _unenhanced_render(split: str, size: int, patients: int | None, progress: bool) -> PhantomModalities:
    """Unenhanced CT at routine dose of every slice of a split (same anatomy and labels as the portal phase)."""
    images, labels = [], []
    for patient, z in progress_over(_jobs(split, patients), progress, "rendering unenhanced phantom CT", unit="slice"):
        case = render_patient(patient, size, 1.0, n_lesions=(0, 2), z_mm=z, phase="unenhanced")
        images.append(case.image_hu)
        labels.append(case.organ_labels)
    return PhantomModalities({"ct-unenhanced": _read_only(images, np.float32)}, _read_only(labels, np.uint8), (), (), FOV_MM / size)


def modality_slices(modality: str, config: DataConfig) -> SliceSet:
    """The ``"phantom-<modality>"`` source: one modality of a split's phantom slices as a single-channel set.

    CT is windowed with the config's CT window, as ``"ct-phantom"`` is. MR is normalized per patient (each
    patient's slices are one scan, like a 3D volume: ``data.normalize``/``percentiles`` fitted to them) and
    the set stores the median mapping, as for several MR volumes. Whole slices at the ``"ct-phantom"``
    render size, never cropped or filtered (``axis``, ``min_foreground`` and ``crop_foreground`` do not
    apply), so the tiles of every modality of one split stay pixel-aligned.

    Args:
        modality: one of ``MODALITIES``.
        config: data config (split, resolution, fit, window, normalize, percentiles).

    Raises:
        ConfigError: an unknown split.
    """
    size = render_size(config.resolution)
    data = phantom_modalities(config.split, size, (modality,))
    images = data.images[modality]
    names = [f"{SOURCE_PREFIX}{modality}/{patient}/z{z:+.0f}mm" for patient, z in zip(data.patients, data.heights)]
    spacing = data.pixel_spacing_mm
    if modality in CT_MODALITIES:
        volumes = (slice_volume(image, spacing, name, patient) for image, name, patient in zip(images, names, data.patients))
        return slices_from_volumes(volumes, config)
    scans: dict[str, list[int]] = {}
    for index, patient in enumerate(data.patients):
        scans.setdefault(patient, []).append(index)
    mappings = [mri_mapping(images[indices], config.normalize, config.percentiles) for indices in scans.values()]
    builder = SliceBuilder(config)
    for mapping, (patient, indices) in zip(mappings, scans.items()):
        builder.mapping = mapping  # add_images maps with the builder's mapping: here each patient's own
        builder.add_images(images[indices], (spacing, spacing), [patient] * len(indices),
                           [f"{names[i]}#0" for i in indices], None)
    builder.mapping = combine_mappings(mappings)
    return builder.finish(False)


@SOURCES.register("phantom-t1")
def phantom_t1_source(config: DataConfig) -> SliceSet:
    """Simulated T1-weighted MR (3 T spoiled gradient echo) of the phantom patients of ``data.split``."""
    return modality_slices("t1", config)


@SOURCES.register("phantom-t2")
def phantom_t2_source(config: DataConfig) -> SliceSet:
    """Simulated T2-weighted MR (3 T spin echo) of the phantom patients of ``data.split``."""
    return modality_slices("t2", config)


@SOURCES.register("phantom-ct")
def phantom_ct_source(config: DataConfig) -> SliceSet:
    """Simulated portal-venous routine-dose CT of the phantom patients of ``data.split`` (train: the
    ``"ct-phantom"`` slices)."""
    return modality_slices("ct", config)


@SOURCES.register("phantom-ct-unenhanced")
def phantom_ct_unenhanced_source(config: DataConfig) -> SliceSet:
    """Simulated unenhanced routine-dose CT of the phantom patients of ``data.split``."""
    return modality_slices("ct-unenhanced", config)
