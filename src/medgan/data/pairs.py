"""Paired data: a ``SliceSet`` whose ``images`` are the targets and whose ``aligned`` domains are the inputs.

``load_pairs`` reads pairs from wherever users have them (``data.input``, ``data.pairs`` and ``data.degrade``
are alternatives; ``pipeline.load_slices`` routes here when one is set):

* ``data.input``: a folder (or file) of inputs matched to ``data.source``, the targets, by name: the path
  below the folder without image suffixes (``.nii.gz``, ``.dcm``, ``.png``, ...), a DICOM series by its
  folder's name; two single files pair as they are. Every name must be matched on both sides. Inputs that are
  the targets' own files (``--input`` equal to ``--data``) are accepted with a one-line warning.
* ``data.pairs``: a CSV with ``input,target[,mask]`` columns (paths relative to the CSV's folder, or
  absolute); ``data.source`` is not read. Each input and each target is on one row only (a repeated row, or a
  target paired with two inputs, is refused naming the CSV and the row). A ``mask`` column is a region mask
  (e.g. an inpainting hole): resampled nearest-neighbour, it becomes the ``"mask"`` domain, +1 where non-zero
  and -1 elsewhere.
* ``data.degrade``: the input is derived from each target of ``data.source`` (``medgan.data.degrade``); the
  CT phantom renders true pairs instead; sources and splits in ``medgan.data.paired_sources``.

``data.context`` K (2.5D): each image input domain holds each slice with its K neighbours on each side, ``[N, 2K + 1,
R, R]``, the slice first (``medgan.data.domains``; derived inputs are derived on the neighbours too); the target
and label maps stay one slice. ``check_context`` refuses it where inputs have no neighbouring slices.

``data.split``: ``"test"`` holds out patients (ct-phantom, ct-phantom-volumes) or a slab of slices (mni152) of derived pairs. Files
have no held-out part: there ``"train"`` and ``"all"`` read every pair, and ``"test"``/``"val"`` are refused.

Each target/input pair is one group of ``datasets.aligned_slices_from_volumes``: one voxel grid (a shape or
spacing mismatch names both files), the same kept slices, crop box and fit. Each image domain has its own
intensity mapping from the same settings: a CT input takes the target's CT window, an MR input its own
normalization (per volume, as the generic pipeline does). Label maps (``degrade=mask``) become the input as
one channel per label >= 1, +1 where present and -1 elsewhere (``one_hot``). Inpainting's input tiles are
the target tiles with the hole at -1, on the target's mapping (``finish_pairs``).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet, aligned_slices_from_volumes, relative_sources
from medgan.data.degrade import INPUT, MASK, TARGET, Degradation, parse_degradation
from medgan.data.domains import Domain
from medgan.data.paired_sources import derived_groups, slab_split
from medgan.data.readers import Volume, discovered_items, file_kind, progress_over, read_volume, subject_of
from medgan.data.readers.image import read_picture
from medgan.data.readers.nifti import read_nifti
from medgan.data.readers.numpy import read_numpy
from medgan.errors import ConfigError, DataError

LOG = logging.getLogger(__name__)
CSV_COLUMNS = (INPUT, TARGET, MASK)
HELD_OUT_SOURCES = ("ct-phantom", "ct-phantom-volumes", "mni152")  # sources whose derived pairs have a "test" split (paired_sources)


def load_pairs(config: DataConfig, progress: bool = True) -> SliceSet:
    """Paired tiles: targets in ``images``, the input domains in ``aligned`` (``"input"``, maybe ``"mask"``).

    Args:
        config: the data section; exactly one of ``input``, ``pairs`` and ``degrade`` is set.
        progress: progress bars over files, slices and renders when there are more than a few.

    Returns:
        The paired slice set; ``degradation`` records ``data.degrade`` (normalized) when the input was derived.

    Raises:
        ConfigError: none of the three is set, a bad ``data.degrade``, ``data.split`` test/val on files, or a
            ``data.context`` the data cannot take (``check_context``).
        DataError: missing or unreadable files, unmatched names, pairs on different grids (both files named),
            a bad CSV (the CSV and row named), a degradation the data cannot take.
    """
    check_context(config)
    held_out = config.degrade and config.source in HELD_OUT_SOURCES
    if config.split not in ("train", "all") and not held_out:
        # Files have no held-out part: "test" would silently give the training pairs back.
        raise ConfigError(f"config key 'data.split' is {config.split!r}: paired data holds out test subjects only for "
                          f"{' and '.join(HELD_OUT_SOURCES)}; give held-out pairs as their own folder or CSV")
    if config.pairs:
        return pairs_from_csv(Path(config.pairs).expanduser(), config, progress)
    if config.input:
        return pairs_from_folders(Path(config.source).expanduser(), Path(config.input).expanduser(), config, progress)
    if config.degrade:
        return degraded_pairs(config, parse_degradation(config.degrade), progress)
    raise ConfigError("paired data needs data.input, data.pairs or data.degrade")


def check_context(config: DataConfig) -> None:
    """Refuses ``data.context`` (2.5D inputs) where paired inputs have no neighbouring slices.

    Raises:
        ConfigError: context with ``data.domain_a`` (modality translation), with ``degrade=mask`` (a label-map
            input), or on the ``ct-phantom`` source, whose pairs are separate 2D slices (``ct-phantom-volumes``,
            whole phantom volumes, takes it).
    """
    if config.context <= 0:
        return
    key = f"config key 'data.context' is {config.context}"
    if config.domain_a:
        raise ConfigError(f"{key}: neighbouring slices are for paired inputs from data.input, data.pairs or "
                          "data.degrade, not data.domain_a; set data.context=0")
    if config.degrade and parse_degradation(config.degrade).name == "mask":
        raise ConfigError(f"{key}: the input of degrade=mask is a label map, and context stacks image slices; set "
                          "data.context=0")
    if config.degrade and config.source == "ct-phantom":
        raise ConfigError(f"{key}: the ct-phantom paired source renders separate 2D slices with no neighbours; "
                          "use data.source ct-phantom-volumes (whole phantom volumes, as medgan demo denoise-volume "
                          "does), or set data.context=0")


def degraded_pairs(config: DataConfig, degradation: Degradation, progress: bool = True,
                   patients: int | None = None) -> SliceSet:
    """Pairs whose inputs ``degradation`` derives from the targets of ``config.source`` (``paired_sources``).

    Args:
        config: data config.
        degradation: the parsed ``data.degrade``.
        progress: progress bars.
        patients: phantom sources only: at most this many patients per patient set (quick tests).
    """
    derived = derived_groups(config, degradation, progress, patients)
    sliced = finish_pairs(derived.groups, config, degradation, derived.label_domains, derived.channels)
    if derived.root is not None:
        sliced = relative_sources(sliced, derived.root)
    return slab_split(sliced, config.split) if derived.slab else sliced


# --------------------------------------------------------------------------------------------------------
# data.input: two folders matched by name


def pairs_from_folders(targets: Path, inputs: Path | Sequence[Path], config: DataConfig,
                       progress: bool = True, target_context: int = 0) -> SliceSet:
    """Targets under ``targets`` paired with the inputs of the same name under ``inputs`` (module docstring).

    Several input folders (modalities, e.g. T1 and T2 for a CT target) become the domains ``"input"``,
    ``"input2"``, ... (``input_names``); every target needs a file of its name in each. ``target_context`` stacks
    that many neighbouring slices with each target slice too (domain A of a 2.5D unpaired run, whose first
    modality is read as the "target"); the inputs take ``config.context``.

    Raises:
        DataError: a missing path, a name found on one side only (the first such file named, with the count),
            two images of one name on one side, unreadable images, a pair on different grids.
    """
    folders = [inputs] if isinstance(inputs, Path) else list(inputs)
    names = input_names(len(folders))
    for path, key in ((targets, "data.source"), *((folder, "data.input") for folder in folders)):
        if not path.exists():
            raise DataError(f"no such file or folder ({key})", path)
    target_items = discovered_items(targets)
    input_items = [discovered_items(folder) for folder in folders]
    if target_items == [targets] and all(items == [folder] for items, folder in zip(input_items, folders)):
        matched = [(targets, *folders)]  # single images: the user paired them
    else:
        by_target = _by_name(target_items, targets)
        by_inputs = [_by_name(items, folder) for items, folder in zip(input_items, folders)]
        for folder, by_input in zip(folders, by_inputs):
            unmatched = [(path, folder) for key, path in by_target.items() if key not in by_input]
            unmatched += [(path, targets) for key, path in by_input.items() if key not in by_target]
            if unmatched:
                path, other = unmatched[0]
                raise DataError(f"nothing of the same name in {other} ({len(unmatched)} unmatched file(s) in all; "
                                "inputs and targets are matched by file name without image suffixes)", path)
        matched = [(by_target[key], *(by_input[key] for by_input in by_inputs)) for key in sorted(by_target)]
    for index, folder in enumerate(folders, start=1):
        _warn_identity_pairs([(group[0], group[index]) for group in matched], folder)

    def groups() -> Iterable[dict[str, Volume]]:
        for target, *sources in progress_over(matched, progress, "reading pairs"):
            group = {TARGET: read_volume(target, config.nan_policy)}
            group.update({name: read_volume(source, config.nan_policy) for name, source in zip(names, sources)})
            yield group

    domains = {TARGET: Domain(context=target_context), **{name: Domain(context=config.context) for name in names}}
    sliced = aligned_slices_from_volumes(groups(), config, domains)
    return relative_sources(sliced, targets)


def input_names(count: int) -> tuple[str, ...]:
    """The domain names of ``count`` input modalities: ``"input"``, ``"input2"``, ``"input3"``, ..."""
    return tuple(INPUT if index == 0 else f"{INPUT}{index + 1}" for index in range(count))


def _by_name(items: list[Path], root: Path) -> dict[str, Path]:
    """Items by their matching name: the path below ``root`` without image suffixes (a series folder as is)."""
    found: dict[str, Path] = {}
    for item in items:
        relative = Path(item.name) if item == root else item.relative_to(root)
        key = (relative.parent / (relative.name if item.is_dir() else subject_of(relative))).as_posix()
        if key in found:
            raise DataError(f"two images named {key!r} ({found[key].name} and {item.name}); keep one", item)
        found[key] = item
    return found


# --------------------------------------------------------------------------------------------------------
# data.pairs: a CSV


def pairs_from_csv(table: Path, config: DataConfig, progress: bool = True) -> SliceSet:
    """The pairs a CSV lists (``input,target[,mask]``; module docstring).

    Raises:
        DataError: a missing or unreadable CSV, missing columns, an empty cell or a missing file (the CSV and
            row named), unreadable images, a pair on different grids.
    """
    rows = read_pair_table(table)
    with_mask = MASK in rows[0]
    domains = {TARGET: Domain(), INPUT: Domain(context=config.context),
               **({MASK: Domain(label_map=True)} if with_mask else {})}

    def groups() -> Iterable[dict[str, Volume]]:
        for row in progress_over(rows, progress, "reading pairs"):
            group = {name: read_volume(row[name], config.nan_policy) for name in (TARGET, INPUT)}
            if with_mask:
                group[MASK] = read_label_volume(row[MASK])
            yield group

    sliced = aligned_slices_from_volumes(groups(), config, domains)
    if with_mask:
        sliced.aligned[MASK] = region_mask(sliced.aligned[MASK])
    return relative_sources(sliced, table.parent)


def read_pair_table(table: Path) -> list[dict[str, Path]]:
    """The rows of a pairs CSV as ``{"input": path, "target": path[, "mask": path]}``, every file checked.

    Raises:
        DataError: naming the CSV (and the row): missing or unreadable, no ``input``/``target`` column, no rows,
            an empty cell, a file that does not exist, a repeated row, an input or target already used on an
            earlier row (``_check_used_once``).
    """
    if not table.is_file():
        raise DataError("pairs CSV not found (data.pairs)", table)
    try:
        lines = table.read_text(encoding="utf-8-sig").splitlines()
        rows = [row for row in csv.reader(lines) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"not a readable CSV ({error})", table) from None
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if INPUT not in header or TARGET not in header:
        found = ", ".join(rows[0]) if rows else "nothing"
        raise DataError(f"the header needs input and target columns (and optionally mask); found: {found}", table)
    if len(rows) < 2:
        raise DataError("pairs CSV has no rows below its header", table)
    columns = {name: header.index(name) for name in CSV_COLUMNS if name in header}
    pairs = []
    first_rows: dict[tuple[str, Path], int] = {}  # (column, resolved file) -> the row that used it first
    for number, row in enumerate(rows[1:], start=2):
        entry, cells = {}, {}
        for name, column in columns.items():
            cell = row[column].strip() if column < len(row) else ""
            if not cell:
                raise DataError(f"row {number}: empty {name} cell", table)
            path = Path(cell).expanduser()
            path = path if path.is_absolute() else table.parent / path
            if not path.exists():
                raise DataError(f"row {number}: {name} file {cell!r} does not exist (looked in {path.parent})", table)
            entry[name], cells[name] = path, cell
        _check_used_once(entry, cells, number, first_rows, table)
        pairs.append(entry)
    _warn_identity_pairs([(entry[TARGET], entry[INPUT]) for entry in pairs], table)
    return pairs


def _check_used_once(entry: Mapping[str, Path], cells: Mapping[str, str], number: int,
                     first_rows: dict[tuple[str, Path], int], table: Path) -> None:
    """Refuses a row that repeats an earlier pair, or whose target or input an earlier row already used.

    Each input and each target appears on one row only (as the labels CSV lists each file once): a repeated row
    is trained on twice as often, and a target paired with several inputs (or an input with several targets)
    asks the model for two answers to one question; a fill-down error in a spreadsheet (every input mapped to one
    target) is the usual cause. Masks may repeat: one hole can serve every pair. Files are compared resolved, so
    ``./a.nii`` and ``a.nii`` are one file.
    """
    keys = {name: (name, entry[name].resolve()) for name in (INPUT, TARGET)}
    earlier = {name: first_rows.get(key) for name, key in keys.items()}
    if earlier[INPUT] is not None and earlier[INPUT] == earlier[TARGET]:
        raise DataError(f"row {number} repeats row {earlier[INPUT]} (input {cells[INPUT]!r}, target "
                        f"{cells[TARGET]!r}); list each pair once", table)
    for name, other in ((TARGET, INPUT), (INPUT, TARGET)):
        if earlier[name] is not None:
            raise DataError(f"row {number}: {name} {cells[name]!r} is already paired on row {earlier[name]}; each "
                            f"{name} belongs to one pair (one {other} per {name})", table)
    for key in keys.values():
        first_rows[key] = number


def _warn_identity_pairs(pairs: Sequence[tuple[Path, Path]], where: Path) -> None:
    """Warns (one line) when pairs have the same file as target and input: the model can only learn the identity.

    A warning, not an error, even when every pair is the identity: unpaired translation warns alike when domain A
    is domain B, and an identity run is a deliberate check of a pipeline (the model must give its input back);
    refusing would stop that use, while the warning makes an accidental ``--input`` equal to ``--data`` visible.
    """
    same = [target for target, source in pairs if _same_file(target, source)]
    if not same:
        return
    if len(same) == len(pairs):
        LOG.warning("%s: every pair has the same file as input and target (is --input the same as --data?): the "
                    "model can only learn the identity", where)
    else:
        LOG.warning("%s: %d of %d pairs have the same file as input and target (first: %s): those pairs teach the "
                    "identity", where, len(same), len(pairs), same[0].name)


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first == second or first.resolve() == second.resolve()
    except OSError:
        return False


def read_label_volume(path: Path) -> Volume:
    """A label map or mask as a ``Volume``; unlike ``read_volume``, an all-background mask is valid."""
    readers = {"nifti": read_nifti, "picture": read_picture, "numpy": read_numpy}
    kind = file_kind(path) if path.is_file() else None
    volume = readers[kind](path) if kind in readers else read_volume(path)
    return Volume(np.rint(volume.array).astype(np.float32), volume.affine, volume.spacing, None, volume.path,
                  volume.subject)


# --------------------------------------------------------------------------------------------------------
# label-map domains as network inputs


def region_mask(labels: torch.Tensor) -> torch.Tensor:
    """A label-map domain ``[N, 1, R, R]`` as a region mask: +1 where non-zero, -1 elsewhere (padding included)."""
    return torch.where(labels != 0, 1.0, -1.0).to(torch.float32)


def one_hot(labels: torch.Tensor, channels: int) -> torch.Tensor:
    """Label maps ``[N, 1, R, R]`` -> ``[N, channels, R, R]``: channel ``k - 1`` is +1 where the label is ``k``,
    -1 elsewhere (label 0, padding and labels above ``channels`` have no channel)."""
    values = labels[:, 0].round().to(torch.int64)
    planes = [values == label for label in range(1, channels + 1)]
    return torch.where(torch.stack(planes, dim=1), 1.0, -1.0).to(torch.float32)


def finish_pairs(
    groups: Iterable[Mapping[str, Volume]],
    config: DataConfig,
    degradation: Degradation,
    label_domains: tuple[str, ...] = (),
    channels: int = 0,
) -> SliceSet:
    """The aligned slice set of derived pairs, its label domains converted and ``degradation`` recorded.

    Args:
        groups: per target, ``{"target": Volume, "input": Volume, ...}``; the target first.
        config: data config.
        degradation: what derived the inputs.
        label_domains: the groups' domains that hold label maps; ``"mask"`` becomes a region mask.
        channels: for ``degrade=mask``, the labels one-hot encoded in the input (the label table's size).
    """
    names = [TARGET, INPUT, *[name for name in label_domains if name != INPUT]]
    domains = {name: Domain(label_map=name in label_domains, context=config.context if name == INPUT else 0)
               for name in names}
    sliced = aligned_slices_from_volumes(groups, config, domains)
    if INPUT in label_domains:
        sliced.aligned[INPUT] = one_hot(sliced.aligned[INPUT], channels)
    if MASK in sliced.aligned:
        sliced.aligned[MASK] = region_mask(sliced.aligned[MASK])
        if degradation.name == "inpaint":
            # Fitting blends the hole's edge into the pixels around it, and an MR input's own normalization moves
            # with the hole: the tiles are made exact instead, the target outside the (nearest-neighbour) hole
            # and the background (-1) inside, on the target's mapping.
            exact = torch.where(sliced.aligned[MASK] > 0, -1.0, sliced.images)
            sliced.aligned[INPUT] = torch.cat([exact, sliced.aligned[INPUT][:, 1:]], dim=1)  # neighbours as derived
            sliced.mappings[INPUT] = sliced.mapping
    sliced.degradation = degradation.text
    return sliced
