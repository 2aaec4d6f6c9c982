"""The report of a translation evaluation: the CLI's text tables and a self-contained HTML page.

Tables: methods (the run, the identity baseline, the input where it shares the target's units, compared runs)
by body MAE, PSNR, SSIM, bone and body Dice, per-tissue MAE and the cycle error; per-organ bias and MAE where
the phantom labels are known. Each cell is the mean over held-out slices with its subject-grouped 95% interval.
The panel (``paired_report.panel_png``) shows input | identity baseline | run | target | |run - target|.
"""

from __future__ import annotations

import html
import string
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from medgan import __version__
from medgan.evaluation.paired_report import _cell, _lookup, panel_png
from medgan.report.card import card_html
from medgan.report.html import _figure, _section

# (key, title, direction)
COLUMNS = (
    ("mae", "body MAE ({unit})", "lower"),
    ("psnr", "PSNR (dB)", "higher"),
    ("ssim", "SSIM", "higher"),
    ("dice_bone", "bone Dice", "higher"),
    ("dice_body", "body Dice", "higher"),
    ("cycle_l1", "cycle L1 (unit)", "lower"),
    ("cycle_mae", "cycle MAE (input units)", "lower"),
)
TISSUE_COLUMNS = tuple((f"tissue_mae.{name}", f"{name} MAE ({{unit}})", "lower")
                       for name in ("air", "fat", "soft tissue", "bone"))
ORGAN_COLUMNS = tuple((f"organ.{organ}.{kind}", f"{organ} {kind}", "near 0" if kind == "bias" else "lower")
                      for organ in ("liver", "aorta", "kidney") for kind in ("bias", "mae"))

DEFINITIONS = (
    ("Body MAE, PSNR, SSIM", "Per held-out slice, in the target mapping's physical units (HU for CT, in its window), "
     "inside the body of the truth. PSNR's peak and SSIM's L are the window width."),
    ("Tissue MAE", "Mean |output − truth| per tissue class and slice (air, fat, soft tissue, bone), classes from "
     "the phantom's label maps where known, else from HU thresholds of the truth (see Summary)."),
    ("Dice", "2|A∩B|/(|A|+|B|) per slice between output and truth: bone = above 200 HU; body = above −500 HU (or "
     "5% of the window above its floor where the window starts higher), holes filled."),
    ("Per-organ error", "Bias = mean(output − truth) and MAE inside each organ's label mask (liver, aorta, kidney)."),
    ("Cycle error", "Unpaired runs: held-out inputs through both generators (a → b → a): L1 in [−1, 1] units "
     "over the tile and every input channel, and MAE in the first input modality's units."),
    ("Identity baseline", "The least-squares line from the first input modality (as the model sees it) to the "
     "target's units, fitted over the body pixels of the training split's true pairs; clipped to the window."),
    ("Intervals", "Means over slices with 95% bootstrap intervals that resample whole subjects."),
)


def _present(metrics: dict, columns: tuple) -> list[tuple[str, str, str]]:
    unit = metrics.get("units", "")
    found = [key for key, *_ in columns if any(_lookup_flat(entry, key) is not None
                                               for entry in metrics["methods"].values())]
    return [(key, title.format(unit=unit), better) for key, title, better in columns if key in found]


def _lookup_flat(entry: dict, key: str) -> Any:
    """Keys hold dots of their own ("tissue_mae.soft tissue"): a flat key first, then a dotted path."""
    return entry[key] if key in entry else _lookup(entry, key)


def _text_table(metrics: dict, columns: list[tuple[str, str, str]]) -> list[str]:
    header = ["method"] + [f"{title} ({better})" for _, title, better in columns]
    lines = [header] + [[entry.get("label", name)] + [html.unescape(_cell(_lookup_flat(entry, key)))
                                                      for key, *_ in columns]
                        for name, entry in metrics["methods"].items()]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]


def _extra_tables(metrics: dict) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The per-tissue and per-organ tables that have values."""
    tables = [(f"MAE per tissue ({metrics.get('units', '')}; classes from {metrics.get('tissue_rule', '')})",
               _present(metrics, TISSUE_COLUMNS)),
              (f"per-organ error (bias and MAE, {metrics.get('units', '')}, in each organ's label mask)",
               _present(metrics, ORGAN_COLUMNS))]
    return [(title, columns) for title, columns in tables if columns]


def _facts(metrics: dict) -> list[tuple[str, str]]:
    held = metrics["held_out"]
    facts = [("held-out", f"{held['slices']} slices of {held['n_subjects']} subjects, {held['description']}"),
             ("direction", metrics.get("direction", "")), ("window", metrics.get("window", "")),
             ("evaluation region", metrics.get("region", ""))]
    fit = (metrics["methods"].get("linear") or {}).get("fit")
    if fit:
        facts.append(("best line", f"target = {fit['slope_per_unit']:.4g} x input(unit) + "
                                           f"{fit['intercept']:.4g}, least squares on {fit['pixels']} body pixels "
                                           f"of {fit['slices']} training slices ({fit['subjects']} subjects)"))
    scores = metrics.get("distribution")
    if scores:
        fid = "n/a" if scores.get("fid") is None else f"{scores['fid']:.4g}"
        facts.append(("KID / FID", f"{scores['kid']:.4g} / {fid} (outputs vs held-out targets, {scores['features']} "
                                   "features, lower is better)"))
    if metrics.get("literature"):
        band = metrics["literature"]["body_mae_hu"]
        ours = metrics["methods"]["gan"]["mae"]["mean"]
        facts.append(("literature", f"body MAE {band[0]:g}-{band[1]:g} HU; ours "
                                    f"{'n/a' if ours is None else f'{ours:.1f}'} HU. {metrics['literature']['note']}"))
    return facts + [("note", note) for note in metrics.get("notes") or []]


def format_translation_table(metrics: dict) -> str:
    """The tables and facts as plain text for the terminal."""
    text = _text_table(metrics, _present(metrics, COLUMNS))
    for title, columns in _extra_tables(metrics):
        text += ["", title] + _text_table(metrics, columns)
    text += [""] + [f"{name}: {value}" for name, value in _facts(metrics)]
    return "\n".join(text)


def _html_table(metrics: dict, columns: list[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}<br><small>{html.escape(better)}</small></th>"
                   for _, title, better in columns)
    rows = []
    for name, entry in metrics["methods"].items():
        label = entry.get("label", name)
        cells = "".join(f'<td class="value">{_cell(_lookup_flat(entry, key))}</td>' for key, *_ in columns)
        rows.append(f'<tr data-method="{html.escape(name)}"><td>{html.escape(label)}</td>{cells}</tr>')
    return f'<table class="metrics paired"><tr><th>Method</th>{head}</tr>{"".join(rows)}</table>'


def render_translation_report(metrics: dict, panel: dict, card: dict | None = None) -> str:
    """The report page as one HTML string (every picture embedded)."""
    held = metrics["held_out"]
    picture, names = panel_png(metrics, panel)
    caption = f"Held-out slices {', '.join(panel['sources'])}; columns: {names}."
    facts = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(value))}</td></tr>"
                    for name, value in _facts(metrics))
    tables = _html_table(metrics, _present(metrics, COLUMNS))
    for title, columns in _extra_tables(metrics):
        tables += f"<h3>{html.escape(title)}</h3>" + _html_table(metrics, columns)
    definitions = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in DEFINITIONS)
    sections = [
        '<p class="privacy warn">This report shows held-out images (inputs, outputs and targets). Keep it as private '
        "as the data.</p>",
        _section("Summary", f'<table class="facts">{facts}</table>', "summary"),
        _section("Methods against the truth", tables, "metrics"),
        _section("Held-out slices", f'<div class="figures">{_figure(picture, "paired-panel", caption)}</div>', "panel"),
        _section("How each number is computed", f'<dl class="definitions">{definitions}</dl>', "definitions"),
    ]
    if card is not None:
        sections.insert(-1, _section("Data card", card_html(card), "data-card"))
    template = string.Template(resources.files("medgan.report").joinpath("template.html").read_text(encoding="utf-8"))
    subtitle = (f"{metrics.get('run', {}).get('path', 'run')} ({metrics.get('direction', '')}) on {held['slices']} "
                f"held-out slices of {held['n_subjects']} subjects · generated "
                f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    return template.substitute(title="medgan translation evaluation report", subtitle=html.escape(subtitle),
                               version=__version__, body="\n".join(sections))
