"""Several modalities of the same subjects as one ``SliceSet``, and the two domains of unpaired translation.

``data.domain_a`` names the input modalities (files, folders or embedded source names), stacked as channels in
that order; their domains are ``"input"``, ``"input2"``, ... (``pairs.input_names``):

* paired (``load_modality_pairs``): the targets are ``data.source``; every input modality is matched to them
  slice by slice: embedded sources by subject and slice order (the phantom renders every modality of a patient
  at the same heights), files by name (``pairs.pairs_from_folders``);
* unpaired (``load_unpaired``, called by the unpaired task): domain A is the input modalities, matched to each other the same way, and
  domain B is ``data.source`` on its own. A and B need not share subjects; when they do (the phantom renders
  both), ``data.disjoint`` keeps them on disjoint halves of the shared subjects, so no patient is seen in both
  domains and the model cannot learn from hidden pairs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet
from medgan.data.pairs import input_names, pairs_from_folders
from medgan.data.sources import SOURCES
from medgan.errors import ConfigError, DataError

LOG = logging.getLogger(__name__)
# An unpaired domain smaller than this is warned about (``_warn_small_domain``).
MIN_DOMAIN_IMAGES = 8
MIN_DOMAIN_SUBJECTS = 2
Loader = Callable[[DataConfig, bool], SliceSet]
"""``pipeline.load_slices``, passed in by the caller (the pipeline routes paired modalities here, so this module
cannot import it back)."""


def load_modality_pairs(config: DataConfig, load: Loader, progress: bool = True) -> SliceSet:
    """Paired tiles: ``data.source`` targets in ``images``, the ``data.domain_a`` modalities in ``aligned``.

    Raises:
        ConfigError: embedded sources mixed with files.
        DataError: unreadable or unmatched inputs (the path named), modalities that are not slice-aligned.
    """
    sources = (config.source, *config.domain_a)
    if _embedded(sources):
        sets = [load(_single(config, source), progress) for source in sources]
        return _stack(sets, sources, first=None)
    return pairs_from_folders(Path(config.source).expanduser(), [Path(p).expanduser() for p in config.domain_a],
                              _single(config, config.source), progress)


def load_domain_a(config: DataConfig, load: Loader, progress: bool = True) -> SliceSet:
    """Domain A of an unpaired run: the first modality in ``images`` (domain ``"input"``), the others aligned."""
    sources = tuple(config.domain_a)
    if not sources:
        raise ConfigError("unpaired translation needs domain A: --domain-a PATH (and domain B: --domain-b PATH)")
    if config.context > 0:
        _refuse_slices_without_neighbours(config, sources)
        return _domain_a_files(config, sources, progress, config.context)
    if len(sources) == 1:
        return load(_single(config, sources[0]), progress)
    if _embedded(sources):
        sets = [load(_single(config, source), progress) for source in sources]
        return _stack(sets, sources, first=sources[0])
    return _domain_a_files(config, sources, progress)


def _refuse_slices_without_neighbours(config: DataConfig, sources: Sequence[str]) -> None:
    """Raises ConfigError for a 2.5D unpaired run (``data.context``) whose domain A is an embedded source or a
    prepared cache: they hold separate 2D slices, with no neighbours to stack."""
    from medgan.data.cache.store import is_cache  # the cache package reads SliceSets: imported where it is used

    for source in sources:
        if source in SOURCES or is_cache(source):
            kind = "an embedded source" if source in SOURCES else "a prepared cache of 2D tiles"
            raise ConfigError(f"config key 'data.context' is {config.context}: domain A {source!r} is {kind}, whose "
                              "slices have no neighbours; give domain A as volume files (NIfTI, DICOM series), or "
                              "set data.context=0")


def _domain_a_files(config: DataConfig, sources: Sequence[str], progress: bool, context: int = 0) -> SliceSet:
    """Domain A's modalities from files matched by name (``pairs.pairs_from_folders``): the first in ``images``,
    the others aligned as ``"input2"``, ...; with ``context`` K each modality's kept slices come with their K
    neighbours on each side, ``[N, 2K + 1, R, R]`` (a 2D image, with no neighbours, is refused there). The files are
    read one by one and held in memory: no dataset layout (MSD, LiTS) and no automatic cohort cache."""
    paths = [Path(source).expanduser() for source in sources]
    for path in paths:
        if not path.exists():
            raise DataError("no such file or folder (data.domain_a)", path)
    paired = pairs_from_folders(paths[0], paths[1:], _single(config, sources[0]), progress, target_context=context)
    # pairs_from_folders names the matched folders input, input2, ...; here the first folder is "input" itself.
    names = input_names(len(sources))[1:]
    mappings = {new: paired.mappings[old] for new, old in zip(names, paired.aligned) if old in paired.mappings}
    return replace(paired, aligned=dict(zip(names, paired.aligned.values())), mappings=mappings)


def load_unpaired(config: DataConfig, load: Loader, progress: bool = True) -> tuple[SliceSet, SliceSet, str]:
    """Domains A and B of an unpaired run and a note on how their subjects were kept apart ("" when disjoint).

    A domain with fewer than ``MIN_DOMAIN_IMAGES`` images or ``MIN_DOMAIN_SUBJECTS`` subjects (after keeping
    shared subjects apart) is accepted with a one-line warning.

    Raises:
        ConfigError: no domain A.
        DataError: an empty domain or unreadable files (the path named); A and B left with no subjects after
            keeping shared subjects apart.
    """
    if any(_same_path(a, config.source) for a in config.domain_a):
        LOG.warning("domain A and domain B are the same data (%s): the model can only learn the identity",
                    config.source)
    domain_a = load_domain_a(config, load, progress)
    domain_b = load(replace(_single(config, config.source), context=0), progress)  # B's slices go in alone
    domain_a, domain_b, note = _kept_apart(domain_a, domain_b, config)
    for name, domain, source in (("A", domain_a, ", ".join(config.domain_a)), ("B", domain_b, config.source)):
        _warn_small_domain(name, domain, source)
    return domain_a, domain_b, note


def _warn_small_domain(name: str, domain: SliceSet, source: str) -> None:
    """Warns (one line) about a domain too small to learn from: unpaired translation learns what a domain looks
    like from its own images alone, so from one image (or one subject) it learns that image and reproduces it."""
    images, subjects = len(domain), len(set(domain.subjects))
    if images < MIN_DOMAIN_IMAGES or subjects < MIN_DOMAIN_SUBJECTS:
        LOG.warning("domain %s (%s) has only %d image(s) of %d subject(s): too few to learn a domain from (unpaired "
                    "translation will mostly reproduce them); give at least %d images of %d or more subjects",
                    name, source, images, subjects, MIN_DOMAIN_IMAGES, MIN_DOMAIN_SUBJECTS)


def _kept_apart(domain_a: SliceSet, domain_b: SliceSet, config: DataConfig) -> tuple[SliceSet, SliceSet, str]:
    """The two domains on disjoint subjects when ``data.disjoint`` (``load_unpaired``), and the note saying so."""
    shared = sorted(set(domain_a.subjects) & set(domain_b.subjects))
    if not shared:
        return domain_a, domain_b, ""
    if not config.disjoint:
        return domain_a, domain_b, (f"domains A and B share {len(shared)} subject(s) (data.disjoint is off): "
                                    "the model may learn from hidden pairs")
    to_b = set(shared[1::2])  # every other shared subject goes to B, the rest to A
    to_a = set(shared) - to_b
    keep_a = [i for i, subject in enumerate(domain_a.subjects) if subject not in to_b]
    keep_b = [i for i, subject in enumerate(domain_b.subjects) if subject not in to_a]
    if not keep_a or not keep_b:
        raise DataError("domains A and B share every subject and too few to split them; give more subjects or "
                        "data.disjoint=false", config.source)
    note = (f"domains A and B share {len(shared)} subject(s): {len(to_a)} kept in A only, {len(to_b)} in B only "
            "(data.disjoint)")
    return domain_a.subset(keep_a), domain_b.subset(keep_b), note


# ---------------------------------------------------------------------------------------------------------------


def _single(config: DataConfig, source: str) -> DataConfig:
    """The data config that reads one source on its own."""
    return replace(config, source=source, domain_a=(), input=None, pairs=None, degrade=None)


def _embedded(sources: Sequence[str]) -> bool:
    """True when every source is an embedded one; mixing embedded sources and files is refused."""
    embedded = [source in SOURCES for source in sources]
    if any(embedded) and not all(embedded):
        raise ConfigError("modalities must all be embedded sources or all files/folders: "
                          f"{', '.join(sources)} mixes them")
    return all(embedded)


def _stack(sets: list[SliceSet], sources: Sequence[str], first: str | None) -> SliceSet:
    """Slice-aligned sets as one: the first in ``images``, the others as aligned domains.

    With ``first`` None (paired), the others are ``"input"``, ``"input2"``, ...; with ``first`` set (the first
    set is itself modality ``"input"``), they are ``"input2"``, ``"input3"``, ...
    """
    base = sets[0]
    names = input_names(len(sets))[1:] if first is not None else input_names(len(sets) - 1)
    aligned, mappings = dict(base.aligned), dict(base.mappings)
    for name, other, source in zip(names, sets[1:], sources[1:]):
        if len(other) != len(base) or other.subjects != base.subjects or other.images.shape != base.images.shape:
            raise DataError(f"not slice-aligned with {sources[0]} ({len(other)} vs {len(base)} slices, or other "
                            "subjects or sizes); modalities of one subject must be rendered or resampled alike",
                            source)
        aligned[name] = other.images
        mappings[name] = other.mapping
    return replace(base, aligned=aligned, mappings=mappings)


def _same_path(first: str, second: str) -> bool:
    if first == second:
        return True
    try:
        return Path(first).expanduser().resolve() == Path(second).expanduser().resolve()
    except OSError:
        return False
