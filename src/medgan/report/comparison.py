"""The self-contained HTML page of ``medgan evaluate --compare``: the paired comparison table and sample grids of
both runs (no real image is shown)."""

from __future__ import annotations

import html
import string
from datetime import datetime, timezone
from importlib import resources

import torch

from medgan import __version__
from medgan.report import plots
from medgan.report.html import _figure, _section, format_value
from medgan.report.sections import small_n_box

VERDICT_CLASS = {"A better": "ok", "B better": "ok", "not separated at 95%": "info"}


def _table(metrics: dict) -> str:
    rows = []
    for row in metrics.get("comparison", []):
        interval = f"[{format_value(row.get('low'))}, {format_value(row.get('high'))}]"
        rows.append(f'<tr data-metric="{html.escape(row["key"])}"><td>{html.escape(row["label"])}</td>'
                    f'<td class="value">{format_value(row.get("a"))}</td><td class="value">{format_value(row.get("b"))}'
                    f'</td><td class="value">{format_value(row.get("difference"))} <span class="interval">{interval}'
                    f'</span></td><td class="verdict {VERDICT_CLASS.get(row.get("verdict"), "info")}">'
                    f'{html.escape(str(row.get("verdict")))}</td><td class="better">{html.escape(row["better"])}</td>'
                    f'<td class="context">{html.escape(str(row.get("scheme")))}, {row.get("resamples")} resamples</td>'
                    "</tr>")
    header = ("<tr><th>Metric</th><th>A</th><th>B</th><th>A − B [95% paired interval]</th><th>Verdict</th>"
              "<th>Better</th><th>Resampling</th></tr>")
    return f'<table class="metrics" data-table="comparison">{header}{"".join(rows)}</table>'


def _explanation(metrics: dict) -> str:
    runs, inputs, resampling = metrics.get("runs", {}), metrics.get("inputs", {}), metrics.get("resampling", {})
    drawn = "real subjects" if resampling.get("real_resampled") == "subjects" else "real images"
    text = (f"A = {runs.get('a')}, B = {runs.get('b')}; each generated {inputs.get('synthetic_images')} images "
            f"(seed {inputs.get('seed')}), scored against {inputs.get('real')} ({inputs.get('real_images')} images, "
            f"{inputs.get('features')} features). Each interval is paired: every one of "
            f"{resampling.get('resamples')} resamples draws one resample of {drawn}, shared by A and B, and one of "
            "each synthetic set, so the real set's noise cancels in the difference. A verdict compares the criterion "
            "(the metric where lower is better, its negative where higher is better, the distance to 1 for density "
            "and the spectrum ratio, the distance to the real value for pairwise MS-SSIM): \"not separated at 95%\" "
            "means its interval holds 0.")
    notes = "".join(f'<li class="{"warn" if note.startswith("warning:") else "info"}">{html.escape(note)}</li>'
                    for note in metrics.get("notes", []) if not note.startswith("warning: small sets"))
    return f'<p class="note">{html.escape(text)}</p>' + (f'<ul class="flags">{notes}</ul>' if notes else "")


def render_comparison(metrics: dict, samples: list[torch.Tensor]) -> str:
    """The comparison page as one HTML string (``samples``: the images of A and B)."""
    grids = "".join(_figure(plots.grid_png(images), f"samples-{side}", f"Run {side.upper()}: "
                            f"{min(64, len(images))} of {len(images)} generated images")
                    for side, images in zip("ab", samples))
    body = "\n".join([
        _section("Comparison", small_n_box(metrics) + _explanation(metrics) + _table(metrics), "comparison"),
        _section("Samples", f'<div class="figures">{grids}</div>', "samples"),
    ])
    template = string.Template(resources.files("medgan.report").joinpath("template.html").read_text(encoding="utf-8"))
    runs = metrics.get("runs", {})
    subtitle = (f"A: {runs.get('a')} · B: {runs.get('b')} · generated "
                f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    return template.substitute(title="medgan comparison report", subtitle=html.escape(subtitle), version=__version__,
                               body=body)
