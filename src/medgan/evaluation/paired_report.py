"""The report of a paired evaluation: a self-contained HTML page and the CLI's text table.

The table has one row per method (input or bicubic, each classic baseline, the GAN; the target for the noise
reference values) and one column per measure with its direction; each cell is the mean over held-out slices
with its subject-grouped 95% interval. The panel shows a few held-out slices as input | best classic | GAN |
target | |GAN - target| ("U-Net (L1 only)" instead of "GAN" for runs without adversarial term).
"""

from __future__ import annotations

import html
import string
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import numpy as np

from medgan import __version__
from medgan.report.card import card_html
from medgan.report.html import _figure, _section, format_value  # the evaluation report's markup, so both look alike
from medgan.visuals import figure_png, image_grid, new_figure, png_bytes

ERROR_SPAN = 0.25  # the error map is white at |GAN - target| >= 25% of the mapping's range

# (key, column title, direction, CT only)
COLUMNS = (
    ("mae", "MAE ({unit})", "lower", False),
    ("psnr", "PSNR (dB)", "higher", False),
    ("ssim", "SSIM", "higher", False),
    ("noise_std", "noise std ({unit})", "near target", True),
    ("nps.distance", "NPS distance", "lower", True),
    ("nps.mean_frequency_ratio", "NPS mean-frequency ratio", "near 1", True),
    ("cnr_ratio", "lesion CNR / target's", "near 1", True),
)

DEFINITIONS = (
    ("MAE, PSNR, SSIM", "Per held-out slice, in physical units, inside the evaluation region. PSNR = 10·log10(L² / "
     "MSE) with L the target mapping's range (CT: the window width), capped at 100 dB; SSIM: MONAI's map (11 px "
     "Gaussian window, σ 1.5, K1 0.01, K2 0.03) on (x − low) / L, averaged over region pixels whose window fits."),
    ("Noise std", "Sample standard deviation inside the uniform region, per slice; compare with the target's."),
    ("NPS", "ICRU 87 / AAPM TG-233: |FFT2(ROI − mean)|² · pixel area / ROI pixels, averaged over one square ROI per "
     "slice (the flattest square of the uniform region, else of the body), radially averaged. Distance: "
     "Σ|a/Σa − b/Σb| of the area-normalised radial curves against the target's (0 = same noise texture, 2 = "
     "disjoint); mean-frequency ratio below 1 means smoother, blotchier noise than the target's."),
    ("Lesion CNR", "|mean(lesion) − mean(ring)| / std(ring), the ring being liver 1–3 px around the lesion; per "
     "slice with a lesion, divided by the target's CNR on the same slice."),
    ("Intervals", "Means over slices with 95% percentile-bootstrap intervals that resample whole subjects (2,000 "
     "resamples), as slices of one patient are not independent; with one subject they resample slices."),
)


def _lookup(entry: dict, key: str) -> Any:
    for part in key.split("."):
        entry = entry.get(part) if isinstance(entry, dict) else None
    return entry


def _cell(summary: Any, plain: bool = False) -> str:
    """``mean [low, high]`` of a grouped summary (a bare number for NPS values)."""
    if isinstance(summary, dict) and "mean" in summary:
        text = format_value(summary["mean"])
        if summary.get("ci_low") is not None:
            text += f" [{format_value(summary['ci_low'])}, {format_value(summary['ci_high'])}]"
        return text
    return format_value(summary) if not plain else str(summary)


def _columns(metrics: dict) -> list[tuple[str, str, str]]:
    unit = metrics.get("units", "")
    present = set()
    for entry in metrics["methods"].values():
        present |= {key for key, *_ in COLUMNS if _lookup(entry, key) is not None}
    return [(key, title.format(unit=unit), better) for key, title, better, _ in COLUMNS if key in present]


def _rows(metrics: dict) -> list[tuple[str, dict]]:
    rows = [(entry.get("label", name) + _choice(entry), entry) for name, entry in metrics["methods"].items()]
    if metrics.get("target"):
        rows.append(("target (reference)", metrics["target"]))
    return rows


def _choice(entry: dict) -> str:
    return f" (σ = {entry['sigma_px']:g} px)" if entry.get("sigma_px") is not None else ""


def format_paired_table(metrics: dict) -> str:
    """The metric table as plain text for the terminal."""
    columns = _columns(metrics)
    header = ["method"] + [f"{title} ({better})" for _, title, better in columns]
    lines = [header] + [[label] + [html.unescape(_cell(_lookup(entry, key))) for key, *_ in columns]
                        for label, entry in _rows(metrics)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    held = metrics["held_out"]
    text.append(f"held-out: {held['slices']} slices of {held['n_subjects']} subjects ({', '.join(held['subjects'])})")
    return "\n".join(text)


def _table(metrics: dict) -> str:
    columns = _columns(metrics)
    head = "".join(f"<th>{html.escape(title)}<br><small>{html.escape(better)} is better</small></th>"
                   if better in ("lower", "higher") else f"<th>{html.escape(title)}<br><small>{html.escape(better)}"
                   "</small></th>" for _, title, better in columns)
    rows = []
    for label, entry in _rows(metrics):
        cells = "".join(f'<td class="value">{_cell(_lookup(entry, key))}</td>' for key, *_ in columns)
        rows.append(f'<tr data-method="{html.escape(label)}"><td>{html.escape(label)}</td>{cells}</tr>')
    return f'<table class="metrics paired"><tr><th>Method</th>{head}</tr>{"".join(rows)}</table>'


def _facts(metrics: dict) -> str:
    held, run = metrics["held_out"], metrics.get("run", {})
    mapping = metrics.get("mapping") or {}
    rows = [
        ("Run", f"{run.get('path', '?')} (task {run.get('task', '?')}; "
                + ", ".join(f"{key} {format_value(value)}" for key, value in (run.get("options") or {}).items())
                + ")"),
        ("Degradation", metrics.get("degrade") or "none (user pairs)"),
        ("Held-out data", held.get("description", held.get("source", "?"))),
        ("Held-out subjects", f"{held['n_subjects']}: {', '.join(held['subjects'])}"),
        ("Slices", str(held["slices"])),
        ("Evaluation region", metrics.get("region", "")),
        ("Uniform region (noise)", metrics.get("uniform_region") or "–"),
        ("Intensity mapping", f"{mapping.get('kind', '–')} [{format_value(mapping.get('low'))}, "
                              f"{format_value(mapping.get('high'))}] {mapping.get('unit', '')}"),
    ]
    if (metrics.get("target") or {}).get("cnr"):
        rows.append(("Target lesion CNR", _cell(metrics["target"]["cnr"])))
    if metrics.get("distribution"):
        scores = metrics["distribution"]
        rows.append(("FID / KID (GAN vs targets)", f"{format_value(scores['fid'])} / {format_value(scores['kid'])} "
                                                   "(offline features; lower is better)"))
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(value))}</td></tr>" for name, value in rows)
    notes = "".join(f'<li class="info">{html.escape(note)}</li>' for note in metrics.get("notes") or [])
    return f'<table class="facts">{body}</table>' + (f'<ul class="flags">{notes}</ul>' if notes else "")


def _unit(images: np.ndarray, mapping: dict) -> np.ndarray:
    low, high = float(mapping["low"]), float(mapping["high"])
    return np.clip((images - low) * (2.0 / (high - low)) - 1.0, -1.0, 1.0)


def panel_png(metrics: dict, panel: dict) -> tuple[bytes, str]:
    """The panel picture and its column names: input | best classic | GAN | target | |GAN - target|."""
    mapping = metrics["mapping"]
    inputs = panel["inputs"][:, 0]
    if panel["label_map"]:  # label values -> grey levels
        inputs = inputs / max(float(np.abs(inputs).max()), 1.0) * 2.0 - 1.0
    columns = [("input", inputs)]
    best = panel["best_classic"]
    if best is not None and best != "input":
        columns.append((metrics["methods"][best]["label"], _unit(panel["methods"][best], mapping)))
    gan, target = panel["methods"]["gan"], panel["target"]
    span = ERROR_SPAN * (float(mapping["high"]) - float(mapping["low"]))
    label = metrics["methods"]["gan"].get("label", "GAN")
    columns += [(label, _unit(gan, mapping)), ("target", _unit(target, mapping)),
                (f"|{label} − target|", np.clip(np.abs(gan - target) / span, 0, 1) * 2 - 1)]
    tiles = np.stack([column[1] for column in columns], axis=1).reshape(-1, *target.shape[1:])
    scale = max(1, 960 // (len(columns) * (target.shape[-1] + 2)))
    return png_bytes(image_grid(tiles, columns=len(columns)), scale=scale), " | ".join(name for name, _ in columns)


def nps_png(metrics: dict) -> bytes | None:
    """Radial NPS curves of every method and of the target (CT), or None without them."""
    curves = [(entry.get("label", name), entry["nps"]) for name, entry in metrics["methods"].items()
              if (entry.get("nps") or {}).get("radial")]
    if not curves or not (metrics.get("target") or {}).get("nps"):
        return None
    figure = new_figure(figsize=(5.6, 3.2), dpi=100)
    axis = figure.subplots()
    for label, nps in curves + [("target", metrics["target"]["nps"])]:
        # Bin 0 is the ROI mean, removed before the FFT: nothing to show on a log scale.
        axis.plot(nps["frequencies"][1:], nps["radial"][1:], label=label, linewidth=2.2 if label == "target" else 1.4)
    axis.set_xlabel("spatial frequency (cycles/mm)")
    axis.set_ylabel(f"NPS ({metrics.get('units', '')}² mm²)")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure_png(figure)


def render_paired_report(metrics: dict, panel: dict, card: dict | None = None) -> str:
    """The report page as one HTML string (every picture embedded); ``card``: the data card written beside it."""
    held = metrics["held_out"]
    picture, names = panel_png(metrics, panel)
    caption = (f"Held-out slices {', '.join(panel['sources'])}; columns: {names}. The error map is black at 0 and "
               f"white at {ERROR_SPAN:.0%} of the intensity range or more.")
    figures = _figure(picture, "paired-panel", caption)
    spectrum = nps_png(metrics)
    if spectrum is not None:
        figures += _figure(spectrum, "nps", "Radial noise power spectra in the NPS squares", plot=True)
    banner = ('<p class="privacy warn">This report shows held-out images (inputs, outputs and targets). Keep it as '
              "private as the data.</p>")
    definitions = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in DEFINITIONS)
    sections = [
        banner,
        _section("Summary", _facts(metrics), "summary"),
        _section("Methods against the target", _table(metrics), "metrics"),
        _section("Held-out slices", f'<div class="figures">{figures}</div>', "panel"),
        _section("How each number is computed", f'<dl class="definitions">{definitions}</dl>', "definitions"),
    ]
    if card is not None:
        sections.insert(-1, _section("Data card", card_html(card), "data-card"))
    template = string.Template(resources.files("medgan.report").joinpath("template.html").read_text(encoding="utf-8"))
    subtitle = (f"{metrics.get('run', {}).get('path', 'run')} on {held['slices']} held-out slices of "
                f"{held['n_subjects']} subjects · generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    return template.substitute(title="medgan paired evaluation report", subtitle=html.escape(subtitle),
                               version=__version__, body="\n".join(sections))
