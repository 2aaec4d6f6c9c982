"""Every script in examples/ runs in tiny mode (in this process, through runpy, as ``python3 examples/X.py --tiny``)
and writes what it says; the pretrained zoo they use ships with the package."""

import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs_in_tiny_mode(script, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [str(script), "--out", str(out), "--tiny"])
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    assert "wrote" in printed or "steps" in printed, printed
    card_folders = {path.parent for path in out.rglob("DATA_CARD.json")}
    assert card_folders, f"{script.name} wrote no DATA_CARD.json under {out}"
    for folder in card_folders:
        card = json.loads((folder / "DATA_CARD.json").read_text())
        section = card.get("export") or card.get("evaluation")
        assert card["not_for_diagnostic_use"] is True and section["command"].startswith("medgan")
