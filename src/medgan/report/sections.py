"""Report sections for the numbers that come with intervals and small-N honesty: the small-N warning box, the
note that says what the intervals are, FID-infinity, the power spectrum and GLCM texture (``medgan.report.html``
assembles them)."""

from __future__ import annotations

import html
from typing import Any

from medgan.report import plots


def value_with_interval(value: str, found: dict | None, format_value: Any) -> str:
    """``value [low, high]`` (the interval in a smaller span), or the value alone."""
    if not found:
        return value
    return (f'{value} <span class="interval">[{format_value(found.get("low"))}, '
            f'{format_value(found.get("high"))}]</span>')


def small_n_box(metrics: dict) -> str:
    """The visible warning box for sets too small to read FID on its own (empty when not flagged)."""
    small = metrics.get("small_n") or {}
    if not small.get("flagged"):
        return ""
    message = str(small.get("message", ""))
    return (f'<div class="warning-box" data-warning="small-n"><strong>Warning:</strong> '
            f"{html.escape(message[:1].upper() + message[1:])}.</div>")


def intervals_note(metrics: dict, format_value: Any) -> str:
    """The line above the metrics table: what [low, high] means, N of each set, what was resampled, FID-infinity."""
    resampling = metrics.get("resampling") or {}
    if not resampling:
        return ""
    drawn = (f"{resampling.get('real_subjects')} real subjects" if resampling.get("real_resampled") == "subjects"
             else "real images")
    text = (f"[low, high]: {resampling.get('confidence', 0.95):.0%} intervals over {resampling.get('resamples')} "
            f"resamples of {drawn} (N real = {resampling.get('n_real')}) and synthetic images (N synthetic = "
            f"{resampling.get('n_synthetic')}); each is the resampled spread around the value, so it shows sampling "
            "variability at these N, not the small-N bias. FID, FRD, diversity and memorization: bootstrap with "
            "replacement; KID and precision/recall/density/coverage: half-samples without replacement (a repeated "
            "image would shrink k-NN radii).")
    if resampling.get("note"):
        text += f" Note: {resampling['note']}."
    distribution = metrics.get("distribution") or {}
    infinity = distribution.get("fid_infinity")
    if isinstance(infinity, dict):
        text += (f" FID-infinity (Chong & Forsyth 2020, FID extrapolated to infinitely many synthetic images): "
                 f"{format_value(infinity.get('value'))}, from FID(N) ≈ {format_value(infinity.get('value'))} + "
                 f"{format_value(infinity.get('slope'))} / N over N = {infinity['sizes'][0]}..{infinity['sizes'][-1]}.")
    elif distribution.get("fid_infinity_note"):
        text += f" {distribution['fid_infinity_note']}."
    return f'<p class="note" data-note="intervals">{html.escape(text)}</p>'


def spectrum_section(spectrum: dict | None, figure: Any, format_value: Any) -> str:
    """The per-band power ratio plot and one line on how to read it (empty without a spectrum)."""
    if not spectrum:
        return ""
    verdict = ("within ±{:.0%} of the real power in every band".format(spectrum.get("tolerance", 0.15))
               if spectrum.get("within_tolerance") else
               f"largest deviation {format_value(spectrum.get('max_deviation'))} in band "
               f"{spectrum.get('worst_band', 0) + 1} of {len(spectrum.get('bands', []))}")
    text = (f"Synthetic / real mean power per radial frequency band (DC excluded): {verdict}; top band "
            f"{format_value(spectrum.get('high_frequency_ratio'))}. Above 1 means more fine-scale energy than the "
            "real images (grain, checkerboard from up-sampling), below 1 blur.")
    plot = figure(plots.spectrum_png(spectrum), "spectrum",
                  "Power ratio per frequency band with its 95% interval (shaded) and the ±15% tolerance (grey)",
                  plot=True)
    return f'<p class="note">{html.escape(text)}</p><div class="figures">{plot}</div>'


def texture_section(texture: dict | None, frd: dict | None, format_value: Any) -> str:
    """GLCM statistics of real and synthetic images (means with intervals) and the FRD line (empty without both)."""
    parts = []
    if frd:
        found = frd.get("value_interval")
        parts.append(f'<p class="note">FRD (Fréchet Radiomics Distance over {frd.get("features")} radiomic '
                     f"features): {value_with_interval(format_value(frd.get('value')), found, format_value)}; "
                     f"{html.escape(str(frd.get('definition', '')))}.</p>")
    if texture:
        rows = []
        for name, values in texture.get("statistics", {}).items():
            real = value_with_interval(format_value(values.get("real")), values.get("real_interval"), format_value)
            fake = value_with_interval(format_value(values.get("synthetic")), values.get("synthetic_interval"),
                                       format_value)
            rows.append(f"<tr><td>{html.escape(name)}</td><td class=\"value\">{real}</td>"
                        f"<td class=\"value\">{fake}</td><td>{format_value(values.get('ratio'))}</td></tr>")
        header = "<tr><th>GLCM statistic</th><th>Real mean</th><th>Synthetic mean</th><th>Synthetic / real</th></tr>"
        parts.append(f'<p class="note">GLCM: {html.escape(str(texture.get("glcm", "")))}.</p>'
                     f'<table class="metrics" data-table="texture">{header}{"".join(rows)}</table>')
    return "".join(parts)
