"""``medgan evaluate --dims 3``: real and synthetic volumes -> the 3D metrics, ``metrics.json``, the report, figures.

Inputs are folders of volumes (``medgan.evaluation.volume_inputs``: NIfTI, DICOM series, NumPy stacks), each
volume mapped to [-1, 1] as the 2D evaluation maps slices and resampled to a cube of side ``resolution``; one
subject per volume. The metrics are ``medgan.metrics.volumes.volume_metrics``:

* ``volume_distribution``: slice-wise FID and KID in the axial, coronal and sagittal planes and their means
  (MAISI's protocol), with 95% intervals that resample whole volumes;
* ``volume_diversity``: pairwise 3D MS-SSIM of synthetic volumes against real volumes', the collapse rule;
* ``volume_memorization``: each synthetic volume's nearest training volume by 3D SSIM (``train``, else the real set
  with a leave-one-out baseline), the near-copy gate of ``sample --privacy-filter``;

beside ``inputs`` (sets, counts, cube side, source geometry, intensity mapping), ``small_n`` (the small-set warning
in volumes), ``resampling``, ``headline`` (``medgan.metrics.catalog.VOLUME_METRICS``), ``notes`` and ``timings_s``.

Outputs: ``out/metrics.json``, ``out/report.html`` (self-contained, ``medgan.report.volumes``), ``out/DATA_CARD.json``
and the figures as PNG files in ``out/figures/`` (mid-planes and axial strips of a few volumes of each set), all
written together: either all are new or none changed. With ``real_images=False`` no real volume is drawn (a real
figure left by an earlier evaluation in ``out/figures/`` is removed), synthetic near copies of a training volume
are not drawn either, and user paths become labels with a short hash (``medgan.evaluation.shareable``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from medgan.card import CARD_NAME, card_text, evaluation_card
from medgan.config import DataConfig
from medgan.data.sources import SOURCES
from medgan.errors import ConfigError, DataError
from medgan.evaluation.evaluate import _json_ready
from medgan.evaluation.inputs import _subset
from medgan.evaluation.shareable import scrub, shared_name
from medgan.evaluation.volume_inputs import VOLUME_FORMATS, VolumeSet, load_volume_set
from medgan.config.volume_rules import INTENSITY_KEYS, MAX_ANISOTROPY, MIN_VOXELS, SIDE_RANGE, VOLUME_SIDE
from medgan.metrics.bootstrap import CONFIDENCE, RESAMPLES
from medgan.metrics.catalog import VOLUME_METRICS, interval, lookup
from medgan.metrics.features import DEFAULT_FEATURES, get_extractor
from medgan.metrics.fid_infinity import MIN_IMAGES
from medgan.metrics.suite import SAMPLE_SEED
from medgan.metrics.volumes import PLANES, volume_metrics
from medgan.report.volumes import FIGURES, REAL_FIGURES, VolumeFigure, render_volume_report, volume_figures
from medgan.run import RunDir, check_output_folder
from medgan.utils import atomic_write_files

MIN_VOLUMES = MIN_IMAGES  # fewer volumes per set get the small-N warning (3D FIDs are published on 1,000-2,048)


def evaluate_volumes(real: str | Path, fake: str | Path, out: str | Path, features: str = DEFAULT_FEATURES,
                     train: str | Path | None = None, resolution: int = VOLUME_SIDE, data_config: Any = None,
                     progress: bool = True, max_volumes: int | None = None, real_images: bool = True) -> dict:
    """Evaluates synthetic volumes against real ones; writes ``metrics.json``, ``report.html``, the data card and
    the figures into ``out``.

    Args:
        real: real volumes: a volume file, a folder of them, or a NumPy stack ``[N, D, H, W]``.
        fake: synthetic volumes, the same kinds.
        out: report folder (created).
        features: the 2D feature extractor of the three-plane scores (``medgan.metrics.features.get_extractor``).
        train: training volumes for the memorization audit (default: the real set, leave-one-out baseline).
        resolution: side of the cube every volume is resampled to (``volume_rules.SIDE_RANGE``).
        data_config: ``medgan.config.DataConfig`` whose intensity settings map volumes to [-1, 1] (CT window,
            MR normalization, ``nan_policy``); default ``DataConfig()`` (abdomen window, MR percentiles).
        progress: progress bars.
        max_volumes: use at most this many volumes per set (a seeded random subset).
        real_images: draw real volumes in the report; False leaves them (and synthetic near copies) out and names
            no user path.

    Returns:
        The metrics dict written to ``metrics.json``.

    Raises:
        MedganError: bad paths or options, unreadable files, 2D images, volumes too small or too anisotropic,
            fewer than 2 volumes in a set.
    """
    started = time.perf_counter()
    out = Path(out)
    check_output_folder(out, "--out")  # before any slow loading
    check_resolution(resolution)
    extractor = get_extractor(features)
    for source, option in ((real, "--real"), (fake, "--fake"), (train, "--train")):
        check_volume_source(source, option)
    if torch.cuda.is_available():  # the slice features are the only heavy network work
        extractor = extractor.to("cuda")
    config = data_config if data_config is not None else DataConfig()
    real_set = load_volume_set(real, "real", config, resolution, progress)
    fake_set = load_volume_set(fake, "synthetic", config, resolution, progress, decoder=real_set.mapping)
    train_set = None if train is None else load_volume_set(train, "training", config, resolution, progress)
    for role, source, volume_set in (("real", real, real_set), ("synthetic", fake, fake_set),
                                     ("training", train, train_set)):
        if volume_set is not None:
            _limit(volume_set, role, source, max_volumes)
    input_notes = [note for volume_set in (real_set, fake_set, train_set) if volume_set for note in volume_set.notes]
    for note in input_notes:  # shown now, before the metric work, and kept in metrics.json and the report
        print(f"note: {note}", file=sys.stderr)
    computed = volume_metrics(real_set.volumes, fake_set.volumes, extractor,
                              train=None if train_set is None else train_set.volumes, seed=SAMPLE_SEED,
                              progress=progress)
    metrics = {"dims": 3, "inputs": _inputs(real_set, fake_set, train_set, resolution, features, extractor.dim,
                                            config), **computed}
    metrics["notes"] = input_notes + _library_notes(metrics)
    _small_n(metrics, int(extractor.dim))
    metrics["resampling"] = _resampling(metrics)
    if not real_images:
        _shareable(metrics, (real_set, fake_set, train_set), input_notes,
                   {"real set": real, "synthetic set": fake, "training set": train})
    metrics["timings_s"]["total"] = time.perf_counter() - started
    figures = volume_figures(real_set.volumes, fake_set.volumes, metrics, real_images)
    _write(out, metrics, figures, real_images, evaluation_card(fake, metrics))
    return metrics


def intensity_config(overrides: Mapping[str, Any] | None) -> DataConfig:
    """The ``DataConfig`` of ``--set data.KEY=VALUE`` overrides (nested: ``{"data": {"window": "brain"}}``), limited
    to the intensity keys (``volume_rules.INTENSITY_KEYS``) and validated as a run's data section is."""
    from medgan.config import from_dict

    values = dict(overrides or {})
    data = values.pop("data", None) or {}
    if values or not isinstance(data, Mapping):
        given = ", ".join(sorted(values)) or "data"
        raise ConfigError(f"--set takes intensity options with --dims 3 (data.KEY=VALUE), got {given}")
    unknown = sorted(set(data) - set(INTENSITY_KEYS))
    if unknown:
        raise ConfigError(f"--set data.{unknown[0]} does not apply to --dims 3; the volumes' intensity options are "
                          + ", ".join(f"data.{key}" for key in INTENSITY_KEYS))
    return from_dict({"data": dict(data)}).data


def check_resolution(side: Any) -> None:
    """``side`` must be an integer in ``SIDE_RANGE``."""
    low, high = SIDE_RANGE
    if isinstance(side, bool) or not isinstance(side, int) or not low <= side <= high:
        raise ConfigError(f"--resolution with --dims 3 is the cube side in voxels, {low} to {high}; got {side!r}")


def check_volume_source(source: Any, option: str) -> None:
    """Refuses what the 2D evaluation reads but the 3D one cannot: embedded sources and run directories."""
    if source is None:
        return
    if str(source) in SOURCES.names():
        raise ConfigError(f"{option} {source}: embedded sources are read as 2D slices; --dims 3 reads volumes from "
                          f"files ({VOLUME_FORMATS})")
    if RunDir.is_run(source):
        raise ConfigError(f"{option} is a run directory; --dims 3 evaluates volumes from files ({VOLUME_FORMATS}): no "
                          "task generates volumes yet", source)


def _limit(volume_set: VolumeSet, role: str, source: Any, max_volumes: int | None) -> None:
    """At most ``max_volumes`` volumes (a seeded random subset), and at least 2 left."""
    if max_volumes is not None:
        volume_set.keep(_subset(len(volume_set.volumes), max_volumes))
    count = len(volume_set.volumes)
    if count < 2:
        cut = " after --max-images" if max_volumes is not None and max_volumes < 2 else ""
        raise DataError(f"the 3D evaluation needs at least 2 volumes per set; the {role} set has {count}{cut}",
                        source)


def _inputs(real_set: VolumeSet, fake_set: VolumeSet, train_set: VolumeSet | None, side: int, features: str,
            dim: int, config: DataConfig) -> dict[str, Any]:
    """The ``inputs`` section: what was evaluated, at which cube, from which geometry, with which mapping."""
    audit = train_set or real_set
    return {
        "real": real_set.description, "synthetic": fake_set.description,
        "train": train_set.description if train_set else real_set.description + " (leave-one-out)",
        "real_volumes": len(real_set.volumes), "synthetic_volumes": len(fake_set.volumes),
        "train_volumes": len(audit.volumes), "resolution": side, "cube": [side, side, side],
        "features": features, "feature_dim": dim,
        "mapping": real_set.mapping.to_dict() if real_set.mapping is not None else None,
        "intensity_settings": {key: getattr(config, key) for key in ("modality", "window", "window_level",
                                                                     "window_width", "normalize", "percentiles")},
        "geometry": {"real": real_set.geometry(), "synthetic": fake_set.geometry(),
                     "train": audit.geometry()},
        "fit": (f"isotropic voxels of (longest extent / {side}) mm, physical proportions kept, shorter extents "
                "centre-padded with background; block averaging, then trilinear interpolation"),
        "limits": {"min_voxels_per_axis": MIN_VOXELS, "max_anisotropy": MAX_ANISOTROPY},
        "subjects": "one per volume",
        "blank_volumes_left_out": {"real": real_set.skipped, "train": train_set.skipped if train_set else 0},
    }


def _library_notes(metrics: dict) -> list[str]:
    """The notes the 3D metrics left in their sections (undefined FIDs, how intervals resampled)."""
    notes = list(lookup(metrics, "volume_distribution.notes") or [])
    for section in ("volume_diversity", "volume_memorization"):
        note = lookup(metrics, f"{section}.resampling_note")
        if note and f"intervals: {note}" not in notes:
            notes.append(f"intervals: {note}")
    return notes


def small_volume_warning(n_real: int, n_fake: int, slices: int, dim: int, minimum: int = MIN_VOLUMES) -> str | None:
    """The warning for volume sets too small to read the three-plane FID on its own, or None.

    Raised when either set has fewer than ``minimum`` volumes, or a plane has at most ``dim`` slices in a set
    (FID undefined or nearly singular there).
    """
    if min(n_real, n_fake) >= minimum and slices > dim:
        return None
    why = (f"{slices} slices in a plane, at or below the feature dimension" if slices <= dim
           else f"under {minimum:,} volumes")
    return (f"small sets: {n_real} real and {n_fake} synthetic volumes for {dim}-D slice features ({why}). "
            "Three-plane FID is biased upward at this size, by an amount that depends on the generator, and the "
            "slices of one volume are correlated, so the number of volumes, not of slices, sets the precision: "
            "compare FIDs only between evaluations with the same numbers of volumes and the same cube, and read "
            "KID (unbiased) and the 95% intervals before ranking models")


def _small_n(metrics: dict, dim: int) -> None:
    """The ``small_n`` section and, when flagged, the warning as the first note."""
    planes = lookup(metrics, "volume_distribution.planes") or {}
    slices = min(min(plane["slices_real"], plane["slices_synthetic"]) for plane in planes.values())
    n_real, n_fake = metrics["inputs"]["real_volumes"], metrics["inputs"]["synthetic_volumes"]
    warning = small_volume_warning(n_real, n_fake, slices, dim)
    metrics["small_n"] = {"flagged": warning is not None, "message": warning, "n_real": n_real,
                          "n_synthetic": n_fake, "unit": "volumes", "slices_per_plane": slices, "feature_dim": dim,
                          "minimum_volumes": MIN_VOLUMES}
    if warning:
        metrics["notes"].insert(0, f"warning: {warning}")


def _resampling(metrics: dict) -> dict[str, Any]:
    """What the intervals resampled (the evaluation-wide ``resampling`` section, in volumes)."""
    distribution = metrics["volume_distribution"]
    notes = [note.removeprefix("intervals: ") for note in metrics["notes"] if note.startswith("intervals: ")]
    return {"confidence": CONFIDENCE, "resamples": RESAMPLES, "unit": "volumes",
            "real_resampled": distribution.get("resampled", "volumes"), "n_real": distribution["n_real"],
            "n_synthetic": distribution["n_synthetic"], "note": "; ".join(notes)}


def format_volume_metrics(metrics: dict, written: str) -> str:
    """The lines ``medgan evaluate --dims 3`` prints: the small-N warning, each headline metric with its 95%
    interval, the FID of each plane, how the intervals resampled, then what it wrote."""
    lines = []
    small = metrics.get("small_n") or {}
    if small.get("message"):
        lines.append(f"warning: {small['message']}")
    width = max(len(info.label) for info in VOLUME_METRICS) + 1
    for info in VOLUME_METRICS:
        value = lookup(metrics, info.key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"{info.label:<{width}}: {_with_interval(metrics, info.key):<28} ({info.better} is better)")
    planes = [f"{plane} {_with_interval(metrics, f'volume_distribution.planes.{plane}.fid')}" for plane in PLANES]
    lines.append(f"{'FID per plane':<{width}}: " + ", ".join(planes))
    resampling = metrics.get("resampling") or {}
    line = (f"[low, high]: {resampling.get('confidence', 0.95):.0%} intervals, N real {resampling.get('n_real')}, "
            f"synthetic {resampling.get('n_synthetic')} volumes; resampled whole volumes "
            f"({resampling.get('resamples')} resamples, one subject per volume)")
    lines.append(line + (f"; {resampling['note']}" if resampling.get("note") else ""))
    return "\n".join([*lines, written])


def _with_interval(metrics: dict, key: str) -> str:
    value = lookup(metrics, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    found = interval(metrics, key)
    return f"{value:.4g}" + (f" [{found['low']:.4g}, {found['high']:.4g}]" if found else "")


def _shareable(metrics: dict, sets: tuple[Any, ...], input_notes: list[str], sources: dict[str, Any]) -> None:
    """Every user path of the sets in ``metrics`` replaced by its label and digest, in place."""
    real_set, fake_set, train_set = sets
    inputs = metrics["inputs"]
    inputs["real"], inputs["synthetic"] = real_set.shared, fake_set.shared
    inputs["train"] = train_set.shared if train_set else real_set.shared + " (leave-one-out)"
    shared_notes = [note for volume_set in sets if volume_set for note in volume_set.shared_notes]
    metrics["notes"] = [note for note in metrics["notes"] if note not in input_notes] + shared_notes
    paths = {str(source): shared_name(source, label) for label, source in sources.items()
             if source is not None and shared_name(source, label) != str(source)}
    metrics.update(scrub(dict(metrics), paths))


def _write(out: Path, metrics: dict, figures: list[VolumeFigure], real_images: bool, card: dict) -> None:
    """``metrics.json``, ``report.html``, the data card and the figures, all or nothing; then, for a shareable
    report, the real figures an earlier evaluation left in ``out/figures`` are removed."""
    clean = _json_ready(metrics)
    metrics.clear()
    metrics.update(clean)
    files: dict[Path, bytes | str] = {
        out / "metrics.json": json.dumps(metrics, indent=2, allow_nan=False) + "\n",
        out / "report.html": render_volume_report(metrics, figures, real_images, card),
        out / CARD_NAME: card_text(card),
    }
    files.update({out / FIGURES / figure.name: figure.png for figure in figures})
    atomic_write_files(files)
    if not real_images:
        for name in REAL_FIGURES:
            (out / FIGURES / name).unlink(missing_ok=True)
