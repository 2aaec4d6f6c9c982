"""The self-contained HTML evaluation report: every figure is an embedded PNG (data URI), no external files."""

from __future__ import annotations

import base64
import html
import math
import string
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Iterable

from medgan import __version__
from medgan.metrics.catalog import interval, lookup
from medgan.report import plots, sections
from medgan.report.card import card_html

FEATURE_NOTES = {
    "offline": (
        "Offline features (64-D, no downloaded weights): a fixed random-weight 4-stage convolutional network "
        "(channel means and RMS per stage, plus a 2×2 layout pool, randomly projected to 48-D), log power in 8 "
        "radial frequency bands, and the fractions of pixels above 8 intensity levels. Images are resized to "
        "64×64. They capture texture, sharpness, noise, intensity distribution and coarse layout; nothing is "
        "learned, so they know no anatomy or pathology. Values compare runs scored with the same extractor only, "
        "not Inception FIDs from papers."
    ),
    "inception": (
        "FID-Inception v3 pool3 features (2048-D, pytorch-fid weights): grey images repeated to 3 channels and "
        "resized bilinearly to 299×299. ImageNet-trained, so comparable with published FIDs but not tuned to "
        "medical images; needs more than 2048 images per set for FID."
    ),
    "swav": (
        "ImageNet SwAV ResNet-50 pool features (2048-D, self-supervised; local weights file): grey images repeated "
        "to 3 channels, resized (antialiased bicubic) to 224×224 and normalised with ImageNet statistics. The feature "
        "space whose FID agreed best with radiologists in Woodland et al. 2024; needs more than 2048 images per set "
        "for FID."
    ),
    "radimagenet": (
        "RadImageNet ResNet-50 pool features (2048-D, trained on 1.35 M radiology images; local weights file): grey "
        "images repeated to 3 channels and resized to 224×224. Comparable with RadFID, MONAI Generative and MAISI "
        "figures; its model rankings were volatile in Woodland et al. 2024, so do not use it alone."
    ),
    "torchscript": "User-supplied TorchScript feature model.",
}

IMAGE_NOTES = (
    ("SSIM / MS-SSIM / PSNR", "Computed with MONAI on the [0, 1] display scale (data range 1): SSIM with an 11 px "
     "Gaussian window (σ 1.5, K1 0.01, K2 0.03); MS-SSIM with as many of the 5 standard scales as the image size "
     "allows (3 at 64 px, weights renormalised); PSNR = 10·log10(1/MSE), capped at 100 dB. Real and synthetic "
     "sets have no true pairs, so each is reported over random real–synthetic pairs beside random real–real pairs."),
    ("SNR, RMS contrast, CNR", "Per image, on the display scale, foreground = pixels above −0.9 in model units "
     "(5% above the window's low end): SNR = mean/std of foreground; RMS contrast = std of all pixels; "
     "CNR = |μfg − μbg| / √(σfg² + σbg²). Real and synthetic distributions are compared with the 1-D "
     "Wasserstein distance."),
    ("Intensity fidelity", "Pixel intensities mapped back to physical units with the data set's intensity "
     "mapping; 400-bin histograms over the mapping window compared with the 1-D Wasserstein distance."),
    ("Diversity", "MS-SSIM over 500 random pairs of distinct images within each set; collapse is flagged when "
     "the synthetic set keeps less than half of the real set's dissimilarity (1 − mean MS-SSIM), or when its "
     "share of duplicate pairs (MS-SSIM ≥ 0.95) exceeds the real share by more than 0.1."),
    ("Memorization", "For each synthetic image, the training image with the highest SSIM among candidates "
     "nearest in pixel space (≤32 px) and feature space, and the nearest training feature. Near copy: SSIM ≥ 0.95 "
     "(a copy with up to 1.5% noise or a 3% intensity change still scores ≥ 0.99; pixels below −0.9 are set "
     "to −1 first, so an imperfect black background cannot hide a copy). Baseline: the same search from held-out "
     "real images, or leave-one-out within the training set."),
    ("FID / KID / precision-recall", "FID: Fréchet distance of Gaussian fits (needs more images than feature "
     "dimensions). KID: unbiased polynomial-kernel MMD², mean ± std over 100 subsets of min(1000, N/2) images "
     "(half the smaller set below 2000 images, so subsets differ). "
     "Precision/recall (Kynkäänniemi 2019) and density/coverage (Naeem 2020) with k = 5 nearest neighbours."),
    ("95% intervals", "The spread each number would show on another draw of real images and synthetic samples of "
     "the same sizes, placed around the value (so it contains it and does not correct small-N bias). Real images "
     "are resampled by subject when at least 5 subjects are known, else image by image (with a note). FID, FRD: "
     "bootstrap of feature rows with replacement. KID, precision/recall/density/coverage: half-samples without "
     "replacement (a repeated image sits at distance 0 from its copy and would shrink k-NN radii; half-samples vary "
     "as much as full samples for these statistics). Diversity: images resampled, their scored pairs re-weighted. "
     "Memorization: the per-image nearest-neighbour values resampled, the training set fixed. Spectrum: bootstrap "
     "percentile interval of the band ratios. Intervals from fewer than 100 resamples are normal intervals."),
    ("Small N and FID-infinity", "FID is biased upward at small N by an amount that depends on the generator "
     "(Chong & Forsyth 2020). Below 1,000 images per set, or at most the feature dimension, the report warns: "
     "compare FIDs only at equal N and read KID and the intervals. FID-infinity fits FID(N) = FID∞ + k/N over "
     "synthetic subsets from max(2D, N/5) to N images (real statistics fixed) where N ≥ 4D."),
    ("Spectrum, texture and FRD", "Power spectrum: mean |FFT|² per radial band (8 bands up to Nyquist) of synthetic "
     "over real images. GLCM texture: contrast, homogeneity, energy, correlation and entropy of the distance-1 "
     "co-occurrence matrix (32 grey levels, foreground ROI), per-set means. FRD: log Fréchet distance of 31 "
     "radiomic features z-scored with the real set's statistics."),
)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(png: bytes | None, name: str, caption: str, plot: bool = False) -> str:
    if png is None:
        return ""
    css = ' class="plot"' if plot else ""
    return (f'<figure data-figure="{name}"><img{css} src="{_data_uri(png)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _section(title: str, content: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{content}\n</section>'


def format_value(value: Any) -> str:
    """A metric value for the table: 4 significant digits, booleans as yes/no, missing as an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return html.escape(str(value))


def _metrics_table(metrics: dict, infos: Iterable[Any]) -> str:
    rows = []
    for info in infos:
        context = ", ".join(f"{label} {format_value(lookup(metrics, key))}" for label, key in info.context)
        value = sections.value_with_interval(format_value(lookup(metrics, info.key)), interval(metrics, info.key),
                                             format_value)
        rows.append(
            f"<tr><td>{html.escape(info.label)}</td><td class=\"value\">{value}</td>"
            f"<td class=\"context\">{context}</td><td class=\"better\">{html.escape(info.better)}</td>"
            f"<td>{html.escape(info.definition)}</td></tr>"
        )
    header = ("<tr><th>Metric</th><th>Value [95% interval]</th><th>Compare with</th><th>Better</th>"
              "<th>Definition</th></tr>")
    return sections.intervals_note(metrics, format_value) + f'<table class="metrics">{header}{"".join(rows)}</table>'


def _facts(metrics: dict) -> str:
    inputs = metrics.get("inputs", {})
    mapping = inputs.get("mapping") or {}
    rows = [
        ("Real images", f"{inputs.get('real', '?')} ({inputs.get('real_images', '?')} images)"),
        ("Synthetic images", f"{inputs.get('synthetic', '?')} ({inputs.get('synthetic_images', '?')} images)"),
        ("Training images (audit)", f"{inputs.get('train', '?')} ({inputs.get('train_images', '?')} images)"),
        ("Resolution", f"{inputs.get('resolution', '?')} × {inputs.get('resolution', '?')} px"),
        ("Features", f"{inputs.get('features', '?')} ({inputs.get('feature_dim', '?')}-D)"),
        ("Intensity mapping", f"{mapping.get('kind', '–')} [{format_value(mapping.get('low'))}, "
                              f"{format_value(mapping.get('high'))}] {mapping.get('unit', '')} → [−1, 1]"),
        ("Evaluation time", f"{format_value((metrics.get('timings_s') or {}).get('total'))} s"),
    ]
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(value))}</td></tr>" for name, value in rows)
    return f'<table class="facts">{body}</table>'


def _flags(metrics: dict) -> str:
    diversity = metrics.get("diversity") or {}
    duplicates = (lookup(diversity, "synthetic_ms_ssim.duplicate_fraction"),
                  lookup(diversity, "real_ms_ssim.duplicate_fraction"))
    return flags_html(metrics, diversity, duplicates, metrics.get("memorization") or {})


def flags_html(metrics: dict, diversity: dict, duplicates: tuple, memorization: dict, thing: str = "image",
               dims: str = "") -> str:
    """The report's list of flags: mode collapse, near copies of training ``thing``s (against the real baseline)
    and the evaluation's notes (the small-N warning has its own box). ``dims`` prefixes the measures ("3D ")."""
    facts = (f"relative {dims}diversity {format_value(diversity.get('relative_diversity'))}; duplicate pairs "
             f"{format_value(duplicates[0])} synthetic vs {format_value(duplicates[1])} real; rule: "
             f"{diversity.get('collapse_rule', '')}")
    items = [("warn", f"Mode collapse flagged: {facts}.") if diversity.get("collapse") else
             ("ok", f"No mode collapse flagged ({facts}).")]
    fraction, baseline = memorization.get("near_copy_fraction"), memorization.get("baseline_near_copy_fraction")
    if fraction is not None:
        level = "warn" if fraction > (baseline or 0.0) + 0.05 else "info" if fraction > 0 else "ok"
        items.append((level, f"{memorization.get('near_copies', 0)} synthetic {thing}s ({format_value(fraction)}) "
                             f"are near copies of a training {thing} ({dims}SSIM ≥ "
                             f"{memorization.get('near_copy_threshold_ssim')}); real baseline: "
                             f"{format_value(baseline)} ({memorization.get('baseline', '')})."))
    boxed = f"warning: {(metrics.get('small_n') or {}).get('message')}"  # shown in its own box above
    items.extend(("warn" if note.startswith("warning:") else "info", note)
                 for note in metrics.get("notes") or [] if note != boxed)
    rows = "".join(f'<li class="{level}">{html.escape(text)}</li>' for level, text in items)
    return f'<ul class="flags">{rows}</ul>'


def _privacy_banner(real_images: bool) -> str:
    """The notice at the top of the report: whether it shows real (patient) images, and what it still names."""
    if real_images:
        text = ("This report contains real patient images: the real-image grid and the training images of the "
                "memorization audit. Keep it as private as the data; do not share it as is. For a copy without "
                "them, run medgan evaluate with --no-real-images.")
    else:
        text = ("Real images are left out of this report (--no-real-images), and so are synthetic images that the "
                "memorization audit flags as near copies of a training image. Data locations are not named either: "
                "each set is shown as what it is with a short SHA-256 of its path (embedded sources by name).")
    level = "warn" if real_images else "info"
    return f'<p class="privacy {level}" data-real-images="{"yes" if real_images else "no"}">{html.escape(text)}</p>'


def _shareable_fakes(artefacts: Any) -> tuple[Any, int]:
    """The synthetic images without those flagged as near copies of a training image (they show a patient)."""
    if artefacts.audit is None:
        return artefacts.fake, 0
    keep = (~artefacts.audit.near_copies).nonzero()[0].tolist()
    return artefacts.fake[keep], len(artefacts.fake) - len(keep)


def _images_section(artefacts: Any, real_images: bool = True) -> str:
    fakes, hidden = (artefacts.fake, 0) if real_images else _shareable_fakes(artefacts)
    caption = f"Synthetic images ({min(64, len(fakes))} of {len(fakes)}, evenly spaced)"
    if hidden:
        caption += f"; {hidden} near copies of training images left out"
    figures = [_figure(plots.grid_png(fakes), "synthetic-grid", caption) if len(fakes) else ""]
    if real_images:
        figures.insert(0, _figure(plots.grid_png(artefacts.real), "real-grid",
                                  f"Real images ({min(64, len(artefacts.real))} of {len(artefacts.real)}, "
                                  "evenly spaced)"))
    content = f'<div class="figures">{"".join(figures)}</div>'
    if not real_images:
        content = '<p class="note">Real images left out (--no-real-images).</p>' + content
    if artefacts.interpolation is not None:
        strip = _figure(plots.strip_png(artefacts.interpolation, columns=8), "interpolation",
                        "Latent interpolation: each row walks a spherical path between two random latent vectors")
        content += f'<h3>Latent interpolation</h3><div class="figures">{strip}</div>'
    return content


def _memorization_section(metrics: dict, artefacts: Any, real_images: bool = True) -> str:
    audit = artefacts.audit
    if audit is None:
        return '<p class="note">Not computed.</p>'
    summary = metrics.get("memorization", {})
    synthetic = format_value(lookup(summary, "nearest_ssim.median"))
    baseline = format_value(lookup(summary, "baseline_nearest_ssim.median"))
    text = (f'<p class="note">Nearest-training SSIM: synthetic median {synthetic}, real baseline median {baseline} '
            f'({html.escape(summary.get("baseline", ""))}). Synthetic images far above the baseline are copies.</p>')
    distribution = _figure(plots.nearest_distribution_png(audit), "nearest-distribution",
                           "Nearest-training similarity of synthetic images against the real-to-real baseline",
                           plot=True)
    return text + f'<div class="figures">{distribution}</div>' + _gallery(artefacts, audit, real_images)


def _membership_section(result: dict) -> str:
    """The membership-inference audit (``medgan.evaluation.audit``): one row per attack."""
    rows = []
    for name, attack in result.get("attacks", {}).items():
        rates = attack.get("tpr_at_fpr", {})
        interval = f"[{format_value(attack.get('auc_ci_low'))}, {format_value(attack.get('auc_ci_high'))}]"
        verdict = "leakage" if attack.get("leakage_detected") else "no evidence of leakage"
        rows.append(f"<tr><td>{html.escape(name)}</td><td class=\"value\">{format_value(attack.get('auc'))}</td>"
                    f"<td>{interval}</td><td class=\"value\">{format_value(rates.get('0.01'))}</td>"
                    f"<td>{verdict}</td><td>{html.escape(attack.get('score', ''))}</td></tr>")
    members, non_members = result.get("members", {}), result.get("non_members", {})
    counts = (f"Members: {members.get('images')} images of {members.get('patients')} patients; non-members: "
              f"{non_members.get('images')} images of {non_members.get('patients')} patients; "
              f"{result.get('synthetic_images')} synthetic images.")
    header = ("<tr><th>Attack</th><th>AUC</th><th>95% CI (by patient)</th><th>TPR at 1% FPR</th><th>Verdict</th>"
              "<th>Score (higher = member)</th></tr>")
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in result.get("notes", []))
    return (f'<p class="note">{html.escape(counts)} {html.escape(result.get("interpretation", ""))}</p>'
            f'<table class="metrics">{header}{"".join(rows)}</table>{notes}')


def _gallery(artefacts: Any, audit: Any, real_images: bool = True, count: int = 8) -> str:
    """The closest synthetic/training pairs as a table of image tiles with their SSIM.

    Without real images only the synthetic tiles are shown, and a flagged near copy not even that.
    """
    columns = []
    for fake_index, train_index, score in audit.closest_pairs(count):
        flagged = score >= audit.threshold
        label = f"SSIM {score:.3f}" + (" · copy" if flagged else "")
        tiles = f'<img src="{_data_uri(plots.tile_png(artefacts.fake[fake_index]))}" alt="synthetic #{fake_index}">'
        if real_images:
            real = _data_uri(plots.tile_png(artefacts.train[train_index]))
            tiles += f'<img src="{real}" alt="training #{train_index}">'
        elif flagged:
            tiles = '<div class="hidden">near copy<br>not shown</div>'
        columns.append(
            f'<td>{tiles}<div class="{"copy" if flagged else "pair"}">{label}</div>'
            f'<div class="index">synthetic #{fake_index}<br>train #{train_index}</div></td>'
        )
    caption = ("Closest synthetic/training pairs, most similar first: synthetic image on top, its nearest training "
               "image below." if real_images else "Synthetic images closest to a training image, most similar "
               "first (the training images are left out).")
    return (f'<figure data-figure="nearest-gallery"><table class="gallery"><tr>{"".join(columns)}</tr></table>'
            f"<figcaption>{caption}</figcaption></figure>")


def _definitions(metrics: dict) -> str:
    features = str((metrics.get("inputs") or {}).get("features", "offline")).split(":")[0]
    if features.endswith((".pt", ".pts")):
        features = "torchscript"
    items = [("Feature space", FEATURE_NOTES.get(features, FEATURE_NOTES["torchscript"]))] + list(IMAGE_NOTES)
    body = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in items)
    return f'<dl class="definitions">{body}</dl>'


def render_report(metrics: dict, artefacts: Any, infos: Iterable[Any], real_images: bool = True,
                  card: dict | None = None) -> str:
    """The report page as one HTML string.

    Args:
        metrics: the JSON-ready metrics (as written to ``metrics.json``).
        artefacts: ``medgan.metrics.suite.Artefacts`` (images, audit, histogram, run records).
        infos: the metrics table rows (``medgan.metrics.catalog.METRICS``).
        real_images: show real (patient) images; False leaves them out (and synthetic near copies), for a report
            that can be shared. A banner at the top says which.
        card: the synthetic-data card written beside the report (``medgan.card``), shown in a "Data card" section.

    Returns:
        A complete, self-contained HTML document.
    """
    intensity = metrics.get("intensity") or {}
    parts = [
        _privacy_banner(real_images),
        _section("Summary", sections.small_n_box(metrics) + _facts(metrics) + _flags(metrics), "summary"),
        _section("Metrics", _metrics_table(metrics, infos), "metrics"),
        _section("Real and synthetic images" if real_images else "Synthetic images",
                 _images_section(artefacts, real_images), "images"),
    ]
    curves = plots.training_curves_png(artefacts.losses, artefacts.history)
    if curves is not None:
        caption = "Losses and in-training FID of the run" if artefacts.history else "Training losses of the run"
        figure = _figure(curves, "training-curves", caption, plot=True)
        parts.append(_section("Training curves", f'<div class="figures">{figure}</div>', "training"))
    if artefacts.histogram is not None:
        overlay = _figure(plots.histogram_png(artefacts.histogram, intensity.get("unit", "")), "intensity-histogram",
                          f"Foreground intensities in physical units ({intensity.get('unit', '')}); "
                          f"W1 = {format_value(intensity.get('wasserstein_foreground'))}", plot=True)
        parts.append(_section("Intensity fidelity", f'<div class="figures">{overlay}</div>', "intensity"))
    spectrum = sections.spectrum_section(metrics.get("spectrum"), _figure, format_value)
    if spectrum:
        parts.append(_section("Power spectrum", spectrum, "spectrum"))
    texture = sections.texture_section(metrics.get("texture"), metrics.get("frd"), format_value)
    if texture:
        parts.append(_section("Radiomic texture and FRD", texture, "texture"))
    parts.append(_section("Memorization audit", _memorization_section(metrics, artefacts, real_images),
                          "memorization"))
    if metrics.get("membership_inference"):
        parts.append(_section("Membership-inference audit", _membership_section(metrics["membership_inference"]),
                                 "membership"))
    if card is not None:
        parts.append(_section("Data card", card_html(card), "data-card"))
    parts.append(_section("How each number is computed", _definitions(metrics), "definitions"))
    inputs = metrics.get("inputs") or {}
    template = string.Template(resources.files("medgan.report").joinpath("template.html").read_text(encoding="utf-8"))
    subtitle = (f"{inputs.get('synthetic', 'synthetic images')} against {inputs.get('real', 'real images')} · "
                f"generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    return template.substitute(title="medgan evaluation report", subtitle=html.escape(subtitle), version=__version__,
                               body="\n".join(parts))
