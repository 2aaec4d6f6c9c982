"""The "Data card" section of the HTML reports: the synthetic-data card (``medgan.card``) as a table."""

from __future__ import annotations

import html
from typing import Any, Mapping

RESULT_VALUES_SHOWN = 8  # values per result kind in the table (DATA_CARD.json holds them all)


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def _mapping(mapping: Mapping[str, Any] | None) -> str:
    if not mapping:
        return "–"
    return (f"{mapping.get('kind', '?')} [{_number(mapping.get('low'))}, {_number(mapping.get('high'))}] "
            f"{mapping.get('unit', '')} → [−1, 1]")


def card_rows(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows of the card's headline facts."""
    provenance = card.get("provenance") or {}
    modality = card.get("modality") or {}
    privacy = card.get("privacy") or {}
    rows = [("Intended use", str(card.get("intended_use", ""))),
            ("Privacy guarantee", str(privacy.get("guarantee", "–")))]
    if privacy.get("privacy_filter") not in (None, "not applicable"):
        rows.append(("Sampling privacy filter", str(privacy["privacy_filter"])))
    if provenance:
        rows += [
            ("Training data", f"SHA-256 {provenance.get('data_sha256') or 'not recorded'}; "
                              f"{_number(provenance.get('subjects'))} subjects, {_number(provenance.get('slices'))} "
                              f"slices; source {provenance.get('data_source')}"),
            ("Model", f"task {provenance.get('task')} ({provenance.get('inference_kind')}), "
                      f"{_number(provenance.get('steps'))} steps, seed {_number(provenance.get('seed'))}"),
            ("Code", f"medgan {provenance.get('medgan_version')}, commit {provenance.get('git_commit') or 'unknown'}"),
            ("Modality", f"{modality.get('modality', '–')}, {modality.get('resolution', '?')} px; intensity "
                         f"mapping {_mapping(modality.get('intensity_mapping'))}"),
        ]
    else:
        rows.append(("Provenance", str(card.get("provenance_note", "unknown"))))
    for kind, result in (card.get("results") or {}).items():
        values = list((result.get("values") or {}).items())
        shown = "; ".join(f"{key} {_number(value)}" for key, value in values[:RESULT_VALUES_SHOWN])
        more = f" (+{len(values) - RESULT_VALUES_SHOWN} more in DATA_CARD.json)" if len(values) > RESULT_VALUES_SHOWN else ""
        rows.append((f"Results: {kind.replace('_', ' ')}", (shown or "–") + more))
    return rows


def card_html(card: Mapping[str, Any] | None) -> str:
    """The section body: a table of the card's facts and where the full card is."""
    if not card:
        return '<p class="note">No data card.</p>'
    body = "".join(f"<tr><td>{html.escape(label)}</td><td>{html.escape(text)}</td></tr>"
                   for label, text in card_rows(card))
    note = ('<p class="note">The full card, with the config and every result value, is DATA_CARD.json beside this '
            f'report (card SHA-256 {html.escape(str(card.get("card_sha256", "–")))}).</p>')
    return f'<table class="facts" data-card="yes">{body}</table>{note}'
