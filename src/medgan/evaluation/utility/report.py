"""Presentation of the utility experiment's result: a plain-text table for the terminal and an HTML fragment."""

from __future__ import annotations

import html
from typing import Any

from medgan.evaluation.utility.protocol import ARMS, CLASS_METRICS, SUMMARY_METRICS

ARM_TITLES = {"real": "real", "real+synthetic": "real+synthetic", "synthetic": "synthetic (TSTR)"}
METRIC_TITLES = {
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
    "macro_auc": "macro AUC",
    "macro_sensitivity": "sensitivity (macro)",
    "macro_specificity": "specificity (macro)",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "auc": "AUC",
}
METRIC_DEFINITIONS = {
    "balanced_accuracy": "mean over classes of per-class sensitivity (recall)",
    "accuracy": "fraction of test images whose predicted class is right",
    "macro_auc": "mean over classes of the one-vs-rest ROC AUC of the class probability",
    "macro_sensitivity": "mean over classes of TP / (TP + FN), one-vs-rest on the predicted class",
    "macro_specificity": "mean over classes of TN / (TN + FP), one-vs-rest on the predicted class",
}


def _cell(summary: dict[str, Any], signed: bool = False, std: bool = True) -> str:
    """``mean ± std [low, high]``; the std is left out when ``std`` is False, the interval when undefined."""
    number = "{:+.3f}" if signed else "{:.3f}"
    text = number.format(summary["mean"]) + (f" ± {summary['std']:.3f}" if std else "")
    if summary["ci_low"] is not None:
        text += f" [{number.format(summary['ci_low'])}, {number.format(summary['ci_high'])}]"
    return text


def _verdict(summary: dict[str, Any]) -> str:
    """Whether the paired interval excludes zero."""
    if summary["ci_low"] is None:
        return "n/a (1 seed)"
    if summary["ci_low"] > 0:
        return "better"
    if summary["ci_high"] < 0:
        return "worse"
    return "no clear difference"


def _header(result: dict[str, Any], std: bool = True) -> str:
    config = result["config"]
    return (
        f"Downstream utility: small CNN, {config['seeds']} seeds x {result['steps_per_run']} steps, "
        f"{len(result['class_names'])} classes ({', '.join(result['class_names'])}); real train {result['n_train']}, "
        f"real test {result['n_test']}, synthetic {result['n_synthetic']} images. "
        f"mean{' ± std' if std else ''} [{config['confidence']:.0%} CI over seeds, clipped to the metric's range]"
    )


def format_utility(result: dict[str, Any]) -> str:
    """A plain-text report of ``run_utility``'s result for the terminal.

    Args:
        result: the dict returned by ``run_utility``.

    Returns:
        Multi-line text: summary table, per-class table and paired differences.
    """
    rows = [_header(result, std=False)]
    if result.get("shared_subjects"):
        rows.append(f"warning: {result['shared_subjects']} subjects appear in both real train and test sets")
    width = 24
    # Room for "<class> specificity", capped so that a very long class name is cut rather than the table.
    name_width = min(40, max(22, 2 + max(len(name) for name in result["class_names"]) + len(" specificity")))
    rows.append("")
    rows.append(f"{'metric':<{name_width}}" + "".join(f"{ARM_TITLES[arm]:<{width}}" for arm in ARMS))
    for metric in SUMMARY_METRICS:
        cells = "".join(f"{_cell(result['arms'][arm][metric], std=False):<{width}}" for arm in ARMS)
        rows.append(f"{METRIC_TITLES[metric]:<{name_width}}{cells}")
    rows.append("")
    rows.append(f"{'class / metric':<{name_width}}" + "".join(f"{ARM_TITLES[arm]:<{width}}" for arm in ARMS))
    for name in result["class_names"]:
        for metric in CLASS_METRICS:
            cells = "".join(f"{_cell(result['per_class'][arm][name][metric], std=False):<{width}}" for arm in ARMS)
            rows.append(f"{(name + ' ' + METRIC_TITLES[metric])[: name_width - 1]:<{name_width}}{cells}")
    rows.append("")
    rows.append("paired differences (same seed, same initial weights)")
    for label, metrics in result["differences"].items():
        for metric, summary in metrics.items():
            cell = _cell(summary, signed=True, std=False)
            rows.append(f"  {label:<24}{METRIC_TITLES[metric]:<20}{cell:<27}{_verdict(summary)}")
    return "\n".join(rows)


def utility_html(result: dict[str, Any]) -> str:
    """An HTML fragment (heading, tables, definitions) of ``run_utility``'s result for the evaluation report.

    Args:
        result: the dict returned by ``run_utility``.

    Returns:
        Self-contained HTML (no scripts, no external resources); class names are escaped.
    """
    escape = html.escape
    head = "<tr><th>metric</th>" + "".join(f"<th>{escape(ARM_TITLES[arm])}</th>" for arm in ARMS) + "</tr>"
    parts = ['<section class="utility">', "<h3>Downstream diagnostic utility</h3>", f"<p>{escape(_header(result))}</p>"]
    if result.get("shared_subjects"):
        shared = result["shared_subjects"]
        parts.append(f"<p><strong>warning:</strong> {shared} subjects are in both train and test.</p>")
    summary_rows = "".join(
        f'<tr><th title="{escape(METRIC_DEFINITIONS[metric])}">{escape(METRIC_TITLES[metric])}</th>'
        + "".join(f"<td>{escape(_cell(result['arms'][arm][metric]))}</td>" for arm in ARMS)
        + "</tr>"
        for metric in SUMMARY_METRICS
    )
    parts.append(f"<table>{head}{summary_rows}</table>")
    class_rows = "".join(
        f"<tr><th>{escape(name)} {escape(METRIC_TITLES[metric])}</th>"
        + "".join(f"<td>{escape(_cell(result['per_class'][arm][name][metric]))}</td>" for arm in ARMS)
        + "</tr>"
        for name in result["class_names"]
        for metric in CLASS_METRICS
    )
    parts.append(f"<table>{head.replace('metric', 'class')}{class_rows}</table>")
    difference_rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{escape(METRIC_TITLES[metric])}</td>"
        f"<td>{escape(_cell(summary, signed=True))}</td><td>{escape(_verdict(summary))}</td></tr>"
        for label, metrics in result["differences"].items()
        for metric, summary in metrics.items()
    )
    parts.append(
        "<table><tr><th>paired difference</th><th>metric</th><th>mean ± std [CI]</th><th>verdict</th></tr>"
        f"{difference_rows}</table>"
    )
    definitions = "".join(
        f"<dt>{escape(METRIC_TITLES[key])}</dt><dd>{escape(text)}</dd>" for key, text in METRIC_DEFINITIONS.items()
    )
    parts.append(
        f"<dl>{definitions}<dt>arms</dt><dd>real: real images with classic augmentation; real+synthetic: plus "
        "synthetic images; synthetic (TSTR): trained on synthetic only. All tested on held-out real images.</dd></dl>"
    )
    parts.append("</section>")
    return "\n".join(parts)
