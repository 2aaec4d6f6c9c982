"""Where derived pairs come from (``data.degrade``): each target volume of ``data.source`` with its input domains.

* Files (a file or folder through the generic readers) and LiTS / MSD Task03_Liver folders (their CT volumes):
  the input is derived from each target (``medgan.data.degrade.degrade_volume``). With ``degrade=mask`` the
  input is the data's own segmentation: LiTS ``segmentation-N`` / MSD ``labelsTr`` (1 liver, 2 tumour).
* ``"ct-phantom"``: true pairs (``medgan.data.phantom.pairs``): ``lowdose:F`` renders every slice at dose
  1.0 and at F (same anatomy, independent noise) instead of inserting noise into the routine image, and
  ``mask`` takes each slice's tissue label map (``ORGANS``: 19 labels besides air). The render size follows
  ``data.resolution`` (256 px for 256 x 256 tiles). ``data.split`` picks disjoint patients: ``"train"``
  (default), ``"test"`` (held-out patients) or ``"all"``.
* ``"ct-phantom-volumes"``: simulated whole patients (``medgan.data.phantom.volume_pairs``), ``lowdose:F`` only:
  each patient's routine-dose volume (40 contiguous 2.5 mm slices) is the target and its dose-F scan (same anatomy,
  independent noise) the input, so ``data.context`` finds true neighbouring slices. ``data.split`` picks disjoint
  patients: ``"train"`` (8, default), ``"test"`` (4 held out) or ``"all"``.
* ``"brain-tumour-SEQUENCE"`` (simulated, ``medgan.data.brain_tumour_sources``): each patient's volume of that
  sequence; ``mask`` takes its tissue-and-tumour label map (``ANATOMY_LABELS``: grey matter, white matter, CSF,
  oedema, enhancing, necrosis), other degradations derive the input from the image. ``data.split`` picks disjoint
  patients: ``"train"`` (48, default), ``"test"`` (16 held out) or ``"all"``.
* ``"mni152"``: the T1 template; ``mask`` turns nilearn's bundled grey- and white-matter probability maps into
  a label map (``mni152_tissue``). One subject, so ``data.split`` holds out a slab of slice positions along
  ``data.axis`` (``slab_split``): ``"test"`` is a contiguous slab of ``SLAB_FRACTION`` of the kept slices in
  the upper-middle brain, ``"train"`` the rest minus ``SLAB_GAP`` slices on each side, ``"all"`` everything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from medgan.config import DataConfig
from medgan.data.brain_tumour_sources import (ANATOMY_LABELS, SOURCE_PREFIX, anatomy_labels, split_patients,
                                             tumour_patient)
from medgan.data.datasets import SliceSet
from medgan.data.degrade import DEGRADATIONS, INPUT, TARGET, Degradation, degrade_volume
from medgan.data.layouts.lits_msd import MASK_CLASSES, CtCase, find_lits_cases, find_msd_cases
from medgan.data.phantom.pairs import phantom_pairs
from medgan.data.phantom.sources import render_size, slice_volume
from medgan.data.phantom.tissue import ORGANS
from medgan.data.phantom.volume_pairs import VOLUME_SOURCE, phantom_volume_groups
from medgan.data.readers import Volume, discovered_items, progress_over, read_label_map, read_volume
from medgan.data.readers.nifti import read_nifti
from medgan.data.sources import SOURCES, mni152_path
from medgan.errors import ConfigError, DataError

MNI152_TISSUE_FILES = (  # grey- and white-matter probability maps, next to the T1 template in nilearn
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
)
# A voxel is brain tissue when its grey- plus white-matter probability reaches this; it is then grey or white
# matter by the larger of the two (argmax), else background/CSF (label 0).
MNI152_TISSUE_THRESHOLD = 0.5
SLAB_START = 0.55  # the held-out slab starts at this fraction of the kept slices (upper-middle brain, axially)
SLAB_FRACTION = 0.2  # ... and holds this fraction of them
SLAB_GAP = 3  # slices left out on each side of the slab, so no training slice neighbours a test slice


@dataclass
class DerivedGroups:
    """The groups of derived pairs and how to finish them.

    Attributes:
        groups: per target, ``{"target": Volume, "input": Volume, ...}``, consumed once.
        label_domains: the domains holding label maps (``"input"`` for ``mask``, ``"mask"`` for ``inpaint``).
        channels: the labels one-hot encoded in a label-map input (0 when the input is an image).
        root: what the sources are written relative to.
        slab: hold out a slab of slice positions for ``data.split`` (``slab_split``).
    """

    groups: Iterable[dict[str, Volume]]
    label_domains: tuple[str, ...]
    channels: int = 0
    root: Path | None = None
    slab: bool = False


def derived_groups(config: DataConfig, degradation: Degradation, progress: bool = True,
                   patients: int | None = None) -> DerivedGroups:
    """The target volumes of ``config.source`` with the inputs ``degradation`` derives (module docstring).

    Args:
        config: data config.
        degradation: the parsed ``data.degrade``.
        progress: progress bars over files, slices and renders.
        patients: phantom sources only: at most this many patients per patient set (quick tests).

    Raises:
        ConfigError: an embedded source that takes no degradation, ct-phantom-volumes with another than lowdose,
            ``mask`` on data without segmentations, ``data.extract`` other than slices, a ``data.split`` the source
            does not have.
        DataError: a missing path, unreadable files, a CT-only degradation on MR, a case without segmentation.
    """
    label_domains = (INPUT,) if degradation.name == "mask" else DEGRADATIONS.get(degradation.name).label_domains
    if config.source == "ct-phantom":
        return DerivedGroups(_phantom(config, degradation, progress, patients), label_domains,
                             len(ORGANS) - 1 if degradation.name == "mask" else 0)
    if config.source == VOLUME_SOURCE:
        return DerivedGroups(phantom_volume_groups(config, degradation, progress, patients), label_domains)
    if config.source == "mni152":
        _check_split(config.split, "mni152")
        path = mni152_path()
        target = read_volume(path, config.nan_policy)
        if degradation.name == "mask":
            groups = [{TARGET: target, INPUT: mni152_tissue(target)}]
            return DerivedGroups(groups, label_domains, 2, path, slab=True)
        return DerivedGroups(_derived([target], degradation, config, progress), label_domains, 0, path, slab=True)
    if config.source.startswith(f"{SOURCE_PREFIX}-") and config.source in SOURCES:
        _check_split(config.split, config.source)
        return DerivedGroups(_tumour_groups(config, degradation, progress, patients), label_domains,
                             len(ANATOMY_LABELS) if degradation.name == "mask" else 0)
    if config.source in SOURCES:
        raise ConfigError(f"config key 'data.degrade' works on ct-phantom, {VOLUME_SOURCE}, mni152, "
                          f"{SOURCE_PREFIX}-* and image files, not on the {config.source!r} source")
    path = Path(config.source).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder (embedded sources: {', '.join(SOURCES.names())})", path)
    cases = _layout_cases(path)
    if cases and config.extract != "slices":
        raise ConfigError(f"config key 'data.extract' is {config.extract!r}; paired data takes whole slices")
    if degradation.name == "mask":
        if not cases:
            raise ConfigError("config key 'data.degrade' is 'mask': it needs segmentations (a LiTS or MSD folder, "
                              "ct-phantom or mni152)", path)
        return DerivedGroups(_segmented(cases, config, progress), label_domains, len(MASK_CLASSES), path)
    if cases:
        volumes = (_case_volume(case, config) for case in progress_over(cases, progress, "reading"))
    else:
        items = discovered_items(path)
        volumes = (read_volume(item, config.nan_policy) for item in progress_over(items, progress, "reading"))
    return DerivedGroups(_derived(volumes, degradation, config, progress), label_domains, 0, path)


def _derived(volumes: Iterable[Volume], degradation: Degradation, config: DataConfig,
             progress: bool) -> Iterator[dict[str, Volume]]:
    for volume in volumes:
        target, derived = degrade_volume(volume, degradation, config, progress)
        yield {TARGET: target, **derived}


def _tumour_groups(config: DataConfig, degradation: Degradation, progress: bool,
                   patients: int | None) -> Iterator[dict[str, Volume]]:
    """Simulated brain-tumour patients of ``data.split`` (the first ``patients``): (image, label map) for
    ``mask``, else derived inputs."""
    sequence = config.source.removeprefix(f"{SOURCE_PREFIX}-")
    indices = progress_over(list(split_patients(config.split))[:patients], progress, "rendering", "patient")
    images = ((index, tumour_patient(index, sequences=(sequence,)).images[sequence]) for index in indices)
    if degradation.name != "mask":
        yield from _derived((image for _, image in images), degradation, config, progress)
        return
    for index, image in images:
        yield {TARGET: image, INPUT: anatomy_labels(index)}


def _check_split(split: str, source: str) -> None:
    if split not in ("train", "test", "all"):
        raise ConfigError(f"config key 'data.split' is {split!r}; paired {source} data has: train, test, all")


# --------------------------------------------------------------------------------------------------------
# files and dataset layouts


def _layout_cases(path: Path) -> list[CtCase]:
    """The cases of a LiTS or MSD folder, else none."""
    if not path.is_dir():
        return []
    if (path / "imagesTr").is_dir() and (path / "labelsTr").is_dir():
        return find_msd_cases(path)
    return find_lits_cases(path)


def _case_volume(case: CtCase, config: DataConfig) -> Volume:
    """A layout case's volume, in HU, with the case's subject."""
    return replace(read_volume(case.image, config.nan_policy), modality="CT", subject=case.subject)


def _segmented(cases: list[CtCase], config: DataConfig, progress: bool) -> Iterator[dict[str, Volume]]:
    """Each case's CT volume with its segmentation as the input (on the volume's grid, as the layouts take it)."""
    for case in progress_over(cases, progress, "reading"):
        if case.mask is None:
            raise DataError("no segmentation for this volume; data.degrade=mask needs one", case.image)
        target = _case_volume(case, config)
        labels = read_label_map(case.mask)
        while labels.ndim > 3 and labels.shape[-1] == 1:
            labels = labels[..., 0]
        mask = Volume(labels.astype(np.float32), target.affine, target.spacing, None, case.mask, case.subject)
        yield {TARGET: target, INPUT: mask}


# --------------------------------------------------------------------------------------------------------
# embedded sources


def _phantom(config: DataConfig, degradation: Degradation, progress: bool,
             patients: int | None) -> Iterator[dict[str, Volume]]:
    """Phantom slices as 2D groups: true low-dose pairs, label maps, or inputs derived from the routine image."""
    _check_split(config.split, "ct-phantom")
    dose = degradation.arguments["fraction"] if degradation.name == "lowdose" else None
    rendered = phantom_pairs(config.split, render_size(config.resolution), dose, progress, patients=patients)
    for index, (patient, z) in enumerate(zip(rendered.patients, rendered.heights)):
        name = f"ct-phantom/{patient}/z{z:+.0f}mm"
        target = slice_volume(rendered.routine[index], rendered.pixel_spacing_mm, name, patient)
        if rendered.low is not None:
            yield {TARGET: target, INPUT: replace(target, array=np.array(rendered.low[index], dtype=np.float32))}
        elif degradation.name == "mask":
            labels = rendered.labels[index].astype(np.float32)
            yield {TARGET: target, INPUT: replace(target, array=labels, modality=None)}
        else:
            target, derived = degrade_volume(target, degradation, config)
            yield {TARGET: target, **derived}


def mni152_tissue(template: Volume) -> Volume:
    """The MNI152 tissue label map on the template's grid: 0 background/CSF, 1 grey matter, 2 white matter.

    From the grey- and white-matter probability maps bundled with nilearn next to the T1 template (no
    download): tissue where their sum reaches ``MNI152_TISSUE_THRESHOLD``, grey or white by the larger one.

    Raises:
        DataError: a probability map is missing.
    """
    maps = []
    for name in MNI152_TISSUE_FILES:
        path = mni152_path().parent / name
        if not path.is_file():
            raise DataError("mask-to-image on mni152 needs nilearn's bundled grey/white-matter maps; reinstall nilearn",
                            path)
        maps.append(read_nifti(path).array.astype(np.float32))
    grey, white = maps
    scale = max(1.0, float(grey.max()), float(white.max()))  # nilearn stores the probabilities as 0-255
    tissue = (grey + white) / scale >= MNI152_TISSUE_THRESHOLD
    labels = np.where(tissue, np.where(white > grey, 2.0, 1.0), 0.0).astype(np.float32)
    return Volume(labels, template.affine, template.spacing, None, mni152_path().parent / MNI152_TISSUE_FILES[0],
                  template.subject)


def slab_split(slices: SliceSet, split: str) -> SliceSet:
    """The ``split`` side of one volume's slices: a held-out slab of positions (module docstring).

    Args:
        slices: the slices of one volume, their positions in ``sources`` (``"file#index"``).
        split: ``"train"``, ``"test"`` or ``"all"``.
    """
    if split == "all":
        return slices
    positions = np.array([int(source.rpartition("#")[2]) for source in slices.sources])
    ordered = np.sort(positions)
    start = int(round(SLAB_START * len(ordered)))
    slab = ordered[start : start + max(1, int(round(SLAB_FRACTION * len(ordered))))]
    low, high = int(slab.min()), int(slab.max())
    if split == "test":
        chosen = (positions >= low) & (positions <= high)
    else:
        chosen = (positions < low - SLAB_GAP) | (positions > high + SLAB_GAP)
    return slices.subset(np.flatnonzero(chosen))
