"""The report of ``medgan evaluate --dims 3``: self-contained HTML (figures embedded as PNG data URIs, as the 2D
report), and the same figures as PNG files for the report folder (``FIGURES``).

Figures, for up to ``SHOWN`` volumes of each set (evenly spaced through the set):

* ``<set>-planes.png``: a row per volume, its axial, coronal and sagittal mid-planes side by side;
* ``<set>-axial-strip.png``: a row per volume, ``STRIP`` axial slices evenly spaced from the lowest to the highest
  slice with foreground (model value above -0.9).

Volumes are ``[N, 1, D, H, W]`` in the layout of ``medgan.metrics`` (``xyz_to_dhw`` of a RAS array: D superior, H
anterior, W right); each plane is drawn as the 2D slices are (``medgan.data.slicing.upright_slices``): superior or
anterior at the top, the patient's right on the viewer's left.
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources

import numpy as np
import torch

from medgan import __version__
from medgan.metrics.catalog import VOLUME_METRICS, interval, lookup
from medgan.report.card import card_html
from medgan.report.html import _figure, _section, flags_html, format_value  # the 2D report's markup, so both look alike
from medgan.report.sections import small_n_box, value_with_interval
from medgan.visuals import image_grid, png_bytes

FIGURES = "figures"  # sub-folder of the report folder that holds the PNG files
SHOWN = 4  # volumes drawn per set
STRIP = 8  # axial slices per strip
TILE_PIXELS = 128  # a cube side is enlarged (nearest neighbour, integer factor) to about this many pixels
FOREGROUND = -0.9  # model value above which a voxel counts as foreground (``medgan.data.slicing``)
REAL_FIGURES = ("real-planes.png", "real-axial-strip.png")

DEFINITIONS = (
    ("Inputs", ("Each volume is read in physical units with its spacing and orientation (RAS), mapped to [−1, 1] as "
     "the 2D evaluation maps slices (CT window, MR normalization per volume; synthetic volumes in physical units "
     "through the real set's mapping), and resampled to the cube with its physical proportions kept: isotropic "
     "voxels of (longest extent / side) mm, shorter extents padded with background. Refused: 2D images, volumes "
     "under 8 voxels along an axis, voxel spacing with largest / smallest above 4.")),
    ("Three-plane FID / KID", ("MAISI's protocol: the central half of each axis is cut into axial, coronal and "
     "sagittal slices, each slice embedded by the 2D feature extractor; FID and KID per plane between the real and "
     "synthetic slices, and their mean over the three planes. A plane needs more slices per set than feature "
     "dimensions for FID. KID: unbiased polynomial-kernel MMD², mean over subsets of slices.")),
    ("95% intervals", ("Whole volumes are resampled (one subject per volume), never slices one by one: the slices of a "
     "volume are strongly correlated, and resampling them as independent gives intervals that are too narrow. FID: "
     "bootstrap with replacement, the same draw for the three planes, centred on the value; KID: half-samples of "
     "volumes. Diversity and memorization: volumes resampled, their scored pairs re-weighted or their nearest-"
     "neighbour values redrawn (the training set fixed).")),
    ("3D diversity", ("Mean 3D MS-SSIM (3D SSIM where the cube holds one scale, under 22 voxels) over pairs of "
     "distinct synthetic volumes, against the same among real volumes; relative diversity = (1 − synthetic) / "
     "(1 − real); collapse is flagged below 0.5 or when duplicate pairs (≥ 0.95) exceed the real share by 0.1.")),
    ("3D memorization", ("Each synthetic volume's nearest training volume by 3D SSIM (11-voxel Gaussian window, "
     "background below −0.9 set to −1) among the training volumes nearest in voxel space; near copy: SSIM ≥ 0.95, "
     "the gate of medgan sample --privacy-filter. Baseline: held-out real volumes against the training set, or "
     "leave-one-out within it.")),
    ("Small N", ("Below 1,000 volumes per set (3D FIDs are published on 1,000 to 2,048 volumes), or with a plane "
     "holding no more slices than feature dimensions, the report warns: compare FIDs only at equal numbers of "
     "volumes and read KID and the intervals.")),
)


@dataclass(frozen=True)
class VolumeFigure:
    """One figure: its file name under ``FIGURES``, the PNG and the caption."""

    name: str
    png: bytes
    caption: str


def display_plane(volume: torch.Tensor, plane: str, index: int) -> torch.Tensor:
    """Slice ``index`` of a ``[1, D, H, W]`` volume in ``plane``, display-oriented (module docstring): ``[1, a, b]``."""
    axis = 1 + ("axial", "coronal", "sagittal").index(plane)
    return volume.select(axis, index).flip(-2, -1)


def _shown(count: int) -> list[int]:
    """Up to ``SHOWN`` indices evenly spaced through ``count`` volumes."""
    return sorted({int(index) for index in np.linspace(0, count - 1, min(SHOWN, count)).round()})


def _strip_indices(volume: torch.Tensor) -> list[int]:
    """``STRIP`` axial slice indices from the lowest to the highest slice with foreground (all slices if none)."""
    present = (volume[0] > FOREGROUND).flatten(1).any(1).nonzero().flatten().tolist()
    first, last = (present[0], present[-1]) if present else (0, volume.shape[1] - 1)
    return [int(index) for index in np.linspace(first, last, STRIP).round()]


def _pictures(volumes: torch.Tensor, indices: list[int]) -> tuple[bytes, bytes]:
    """The planes and strip PNGs of ``volumes[indices]``."""
    side = volumes.shape[-1]
    scale = max(1, TILE_PIXELS // side)
    planes, strips = [], []
    for index in indices:
        volume = volumes[index].float().cpu()
        middle = [size // 2 for size in volume.shape[1:]]
        planes += [display_plane(volume, plane, at) for plane, at in zip(("axial", "coronal", "sagittal"), middle)]
        strips += [display_plane(volume, "axial", at) for at in _strip_indices(volume)]
    return (png_bytes(image_grid(torch.stack(planes), columns=3), scale),
            png_bytes(image_grid(torch.stack(strips), columns=STRIP), scale))


def near_copies(metrics: dict) -> tuple[set[int], bool]:
    """The synthetic volumes the memorization audit flags, and whether that list is complete (the audit lists its
    closest pairs only)."""
    audit = metrics.get("volume_memorization") or {}
    threshold = audit.get("near_copy_threshold_ssim", 0.95)
    flagged = {int(fake) for fake, _, score in audit.get("closest_pairs", []) if score >= threshold}
    return flagged, len(flagged) >= int(audit.get("near_copies", 0))


def volume_figures(real: torch.Tensor, fake: torch.Tensor, metrics: dict, real_images: bool) -> list[VolumeFigure]:
    """The report's figures; without real images, the real ones and the synthetic near copies are left out."""
    figures = []
    if real_images:
        shown = _shown(len(real))
        planes, strip = _pictures(real, shown)
        figures += [VolumeFigure(REAL_FIGURES[0], planes, f"Real volumes {_numbers(shown)} of {len(real)}: axial, "
                                 "coronal and sagittal mid-planes"),
                    VolumeFigure(REAL_FIGURES[1], strip, f"Real volumes {_numbers(shown)}: {STRIP} axial slices, "
                                 "inferior to superior")]
    hidden, complete = (set(), True) if real_images else near_copies(metrics)
    candidates = [index for index in range(len(fake)) if index not in hidden] if complete else []
    if candidates:
        shown = [candidates[index] for index in _shown(len(candidates))]
        left_out = f"; {len(hidden)} near copies of training volumes left out" if hidden else ""
        planes, strip = _pictures(fake, shown)
        figures += [VolumeFigure("synthetic-planes.png", planes, f"Synthetic volumes {_numbers(shown)} of "
                                 f"{len(fake)}: axial, coronal and sagittal mid-planes{left_out}"),
                    VolumeFigure("synthetic-axial-strip.png", strip, f"Synthetic volumes {_numbers(shown)}: {STRIP} "
                                 "axial slices, inferior to superior")]
    return figures


def _numbers(indices: list[int]) -> str:
    return ", ".join(f"#{index}" for index in indices)


def _facts(metrics: dict) -> str:
    inputs = metrics.get("inputs") or {}
    mapping = inputs.get("mapping") or {}
    side = inputs.get("resolution", "?")
    geometry = inputs.get("geometry") or {}
    rows = [
        ("Real volumes", f"{inputs.get('real', '?')} ({inputs.get('real_volumes', '?')} volumes)"),
        ("Synthetic volumes", f"{inputs.get('synthetic', '?')} ({inputs.get('synthetic_volumes', '?')} volumes)"),
        ("Training volumes (audit)", f"{inputs.get('train', '?')} ({inputs.get('train_volumes', '?')} volumes)"),
        ("Cube", f"{side} × {side} × {side} voxels; {inputs.get('fit', '')}"),
        *((f"Source geometry, {name}", _geometry(geometry[key])) for key, name in
          (("real", "real"), ("synthetic", "synthetic"), ("train", "training")) if key in geometry),
        ("Features", f"{inputs.get('features', '?')} ({inputs.get('feature_dim', '?')}-D, on 2D slices)"),
        ("Intensity mapping", (f"{mapping.get('kind', 'none: read in model units')} "
                               f"[{format_value(mapping.get('low'))}, {format_value(mapping.get('high'))}] "
                               f"{mapping.get('unit', '')} → [−1, 1]")),
        ("Evaluation time", f"{format_value((metrics.get('timings_s') or {}).get('total'))} s"),
    ]
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(value))}</td></tr>" for name, value in rows)
    return f'<table class="facts" data-table="volume-facts">{body}</table>'


def _geometry(found: dict) -> str:
    """One line of a set's source geometry: shapes, spacings, anisotropy and the cube's voxel size."""
    def span(low: list, high: list, unit: str = "") -> str:
        shown = [f"{format_value(a)}" if a == b else f"{format_value(a)}–{format_value(b)}" for a, b in zip(low, high)]
        return " × ".join(shown) + unit

    voxel = found.get("cube_voxel_mm") or {}
    return (f"{span(found['shape_min'], found['shape_max'])} voxels of "
            f"{span(found['spacing_mm_min'], found['spacing_mm_max'], ' mm')} ({found.get('axes', '')}); largest "
            f"anisotropy {format_value(found.get('largest_anisotropy'))}; cube voxels {format_value(voxel.get('min'))}"
            f"–{format_value(voxel.get('max'))} mm")


def _flags(metrics: dict) -> str:
    diversity = metrics.get("volume_diversity") or {}
    duplicates = (lookup(diversity, "synthetic.duplicate_fraction"), lookup(diversity, "real.duplicate_fraction"))
    return flags_html(metrics, diversity, duplicates, metrics.get("volume_memorization") or {}, thing="volume",
                      dims="3D ")


def _intervals_note(metrics: dict) -> str:
    resampling = metrics.get("resampling") or {}
    text = (f"[low, high]: {resampling.get('confidence', 0.95):.0%} intervals over {resampling.get('resamples')} "
            f"resamples of whole volumes (N real = {resampling.get('n_real')}, N synthetic = "
            f"{resampling.get('n_synthetic')}; one subject per volume), placed around the value: they show sampling "
            "variability at these N, not the small-N bias of FID.")
    if resampling.get("note"):
        text += f" Note: {resampling['note']}."
    return f'<p class="note" data-note="intervals">{html.escape(text)}</p>'


def _metrics_table(metrics: dict) -> str:
    rows = []
    for info in VOLUME_METRICS:
        context = ", ".join(f"{label} {format_value(lookup(metrics, key))}" for label, key in info.context)
        value = value_with_interval(format_value(lookup(metrics, info.key)), interval(metrics, info.key), format_value)
        rows.append(f'<tr data-metric="{html.escape(info.key)}"><td>{html.escape(info.label)}</td>'
                    f'<td class="value">{value}</td><td class="context">{html.escape(context)}</td>'
                    f'<td class="better">{html.escape(info.better)}</td><td>{html.escape(info.definition)}</td></tr>')
    header = ("<tr><th>Metric</th><th>Value [95% interval]</th><th>Compare with</th><th>Better</th>"
              "<th>Definition</th></tr>")
    return f'<table class="metrics" data-table="volume-metrics">{header}{"".join(rows)}</table>'


def _planes_table(metrics: dict) -> str:
    rows = []
    for plane, scores in (lookup(metrics, "volume_distribution.planes") or {}).items():
        key = f"volume_distribution.planes.{plane}"
        cells = [value_with_interval(format_value(scores.get(name)), interval(metrics, f"{key}.{name}"), format_value)
                 for name in ("fid", "kid_mean")]
        low, high = scores.get("slice_range", ["?", "?"])
        rows.append(f'<tr data-plane="{plane}"><td>{plane}</td><td class="value">{cells[0]}</td><td class="value">'
                    f'{cells[1]}</td><td>{scores.get("slices_real")} / {scores.get("slices_synthetic")}</td>'
                    f"<td>{low} to {high - 1 if isinstance(high, int) else high}</td></tr>")
    header = ("<tr><th>Plane</th><th>FID [95% interval]</th><th>KID [95% interval]</th><th>Slices real / synthetic"
              "</th><th>Slice indices</th></tr>")
    rule = html.escape(str(lookup(metrics, "volume_distribution.slice_rule") or ""))
    return (f'<h3>Per plane</h3><p class="note">Slices: {rule}.</p>'
            f'<table class="metrics" data-table="planes">{header}{"".join(rows)}</table>')


def _volumes_section(metrics: dict, figures: list[VolumeFigure], real_images: bool) -> str:
    parts = [] if real_images else ['<p class="note">Real volumes left out (--no-real-images).</p>']
    if not any(figure.name.startswith("synthetic") for figure in figures):
        flagged, complete = near_copies(metrics)
        why = ("every synthetic volume is a near copy of a training volume" if complete else
               f"the memorization audit flags {lookup(metrics, 'volume_memorization.near_copies')} near copies of "
               f"training volumes but names only the {len(flagged)} closest, so none can be drawn safely")
        parts.append(f'<p class="note">No synthetic volume is drawn: {html.escape(why)}; a near copy shows a '
                     "patient.</p>")
    embedded = "".join(_figure(figure.png, figure.name.removesuffix(".png"), figure.caption) for figure in figures)
    files = ", ".join(f"{FIGURES}/{figure.name}" for figure in figures)
    parts.append(f'<div class="figures">{embedded}</div><p class="note">The same pictures are PNG files beside this '
                 f"report: {html.escape(files)}.</p>")
    return "".join(parts)


def _memorization_section(metrics: dict) -> str:
    audit = metrics.get("volume_memorization") or {}
    text = (f"Nearest-training 3D SSIM: synthetic median {format_value(lookup(audit, 'nearest_ssim.median'))}, real "
            f"baseline median {format_value(lookup(audit, 'baseline_nearest_ssim.median'))} "
            f"({audit.get('baseline', '')}). Synthetic volumes far above the baseline are copies.")
    threshold = audit.get("near_copy_threshold_ssim", 0.95)
    rows = "".join(f"<tr><td>#{fake}</td><td>#{train}</td><td class=\"value\">{format_value(score)}</td>"
                   f"<td>{'near copy' if score >= threshold else ''}</td></tr>"
                   for fake, train, score in audit.get("closest_pairs", []))
    header = "<tr><th>Synthetic volume</th><th>Nearest training volume</th><th>3D SSIM</th><th></th></tr>"
    return (f'<p class="note">{html.escape(text)}</p><h3>Closest pairs, most similar first</h3>'
            f'<table class="metrics" data-table="closest-pairs">{header}{rows}</table>')


def _privacy_banner(real_images: bool) -> str:
    if real_images:
        text = ("This report contains real patient images: planes and slices of real volumes. Keep it as private as "
                "the data, and the PNG files beside it too. For a copy without them, run medgan evaluate with "
                "--no-real-images.")
    else:
        text = ("Real volumes are left out of this report (--no-real-images), and so are synthetic volumes that the "
                "memorization audit flags as near copies of a training volume. Data locations are shown as what "
                "each set is with a short SHA-256 of its path.")
    level = "warn" if real_images else "info"
    return f'<p class="privacy {level}" data-real-images="{"yes" if real_images else "no"}">{html.escape(text)}</p>'


def render_volume_report(metrics: dict, figures: list[VolumeFigure], real_images: bool = True,
                         card: dict | None = None) -> str:
    """The 3D report page as one self-contained HTML string.

    Args:
        metrics: the JSON-ready metrics (as written to ``metrics.json``).
        figures: from ``volume_figures``.
        real_images: whether real volumes are drawn (the banner at the top says which).
        card: the data card written beside the report, shown in a "Data card" section.
    """
    distribution = _intervals_note(metrics) + _metrics_table(metrics) + _planes_table(metrics)
    body = "\n".join([
        _privacy_banner(real_images),
        _section("Summary", small_n_box(metrics) + _facts(metrics) + _flags(metrics), "summary"),
        _section("Metrics", distribution, "metrics"),
        _section("Real and synthetic volumes" if real_images else "Synthetic volumes",
                 _volumes_section(metrics, figures, real_images), "volumes"),
        _section("Memorization audit (3D)", _memorization_section(metrics), "memorization"),
        _section("Data card", card_html(card), "data-card") if card is not None else "",
        _section("How each number is computed", '<dl class="definitions">' + "".join(
            f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in DEFINITIONS) + "</dl>",
            "definitions"),
    ])
    inputs = metrics.get("inputs") or {}
    template = string.Template(resources.files("medgan.report").joinpath("template.html").read_text(encoding="utf-8"))
    subtitle = (f"{inputs.get('synthetic', 'synthetic volumes')} against {inputs.get('real', 'real volumes')} (3D, "
                f"{inputs.get('resolution', '?')}³ voxels) · generated "
                f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    return template.substitute(title="medgan volume evaluation report", subtitle=html.escape(subtitle),
                               version=__version__, body=body)
