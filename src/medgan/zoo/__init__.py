"""The pretrained model zoo: small model bundles trained by the project and shipped inside the package.

Each entry is a model bundle (``medgan.inference.bundle``: float16 safetensors weights, config, data spec, data
card with the SHA-256 of each file) plus ``ZOO.json``, which says what it makes, the command that built it
(``benchmarks/build_zoo.py``), the machine, the training steps and the figures measured on held-out data. Entries
are read from the installed package, so they work offline; no weights are downloaded.

``medgan zoo`` lists them; ``medgan sample --model brain-t1`` and ``medgan translate --model ct-denoise`` use one
by name, as does ``medgan.load("brain-t1")``. A path that exists always wins over a zoo name.

This module reads JSON only (no torch), so listing the zoo is instant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgan.errors import ConfigError

MODELS = Path(__file__).resolve().parent / "models"
ENTRY_FILE = "ZOO.json"


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained bundle.

    Attributes:
        name: the name to load it by, e.g. ``"brain-t1"``.
        what: what it makes, and from which (embedded, synthetic or template) training data.
        task: the task it was trained with (unconditional, conditional, paired, unpaired).
        resolution: the training tile side in pixels.
        steps: training steps.
        path: the bundle folder.
        details: everything else ``ZOO.json`` holds (command, machine, figures, float16 check).
    """

    name: str
    what: str
    task: str
    resolution: int
    steps: int
    path: Path
    details: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        """Bytes of the bundle's files."""
        return sum(path.stat().st_size for path in self.path.iterdir() if path.is_file())

    def figures(self) -> str:
        """The entry's measured figure in one line (its best in-training score, or its held-out evaluation)."""
        headline = self.details.get("headline")
        if headline:
            return str(headline)
        best = self.details.get("best") or {}
        if best.get("value") is not None:
            return f"best in-training {str(best.get('key', 'score')).upper()} {best['value']:.4g}"
        return "no figures recorded"


def _read(folder: Path) -> ZooEntry:
    try:
        values = json.loads((folder / ENTRY_FILE).read_text())
        return ZooEntry(str(values["name"]), str(values["what"]), str(values["task"]), int(values["resolution"]),
                        int(values["steps"]), folder, values)
    except (OSError, ValueError, KeyError, TypeError) as error:  # a damaged installation
        raise ConfigError(f"zoo entry is unreadable ({type(error).__name__}: {error})", folder / ENTRY_FILE) from None


def entries() -> list[ZooEntry]:
    """Every model in the zoo, by name."""
    if not MODELS.is_dir():
        return []
    return [_read(folder) for folder in sorted(MODELS.iterdir()) if (folder / ENTRY_FILE).is_file()]


def names() -> list[str]:
    """The zoo's model names."""
    return [entry.name for entry in entries()]


def entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; ConfigError listing the names if there is none."""
    folder = MODELS / name
    if name and "/" not in name and (folder / ENTRY_FILE).is_file():
        return _read(folder)
    raise ConfigError(f"no zoo model {name!r}; the zoo has: {', '.join(names()) or 'nothing installed'}")


def resolve(source: str | Path) -> Path:
    """A run directory, bundle folder or zoo name -> the path to load.

    An existing path is returned as it is (a user's folder named like a zoo model wins); otherwise a zoo name gives
    its bundle folder. Anything else is returned unchanged, so the loader reports it as a missing run.
    """
    path = Path(source)
    if path.exists():
        return path
    text = str(source)
    if text and "/" not in text and (MODELS / text / ENTRY_FILE).is_file():
        return MODELS / text
    return path


def locate(source: str | Path) -> Path:
    """``resolve``, and a ConfigError listing the zoo when ``source`` is a bare name that is neither a path nor a
    zoo model (``medgan sample --model brain-t11``); a missing path is left to the loader to report."""
    path = resolve(source)
    text = str(source)
    if not path.exists() and text and "/" not in text and "\\" not in text and not text.startswith("."):
        raise ConfigError(f"no run, bundle or zoo model {text!r} (the zoo has: {', '.join(names()) or 'nothing'}; "
                          "medgan zoo lists them)", text)
    return path


def describe() -> str:
    """The table ``medgan zoo`` prints."""
    rows = entries()
    if not rows:
        return "the zoo is empty (this installation ships no pretrained models)"
    lines = []
    for item in rows:
        lines.append(f"{item.name:<15} {item.task:<13} {item.resolution:>4} px  {item.size_bytes / 2**20:4.1f} MiB  "
                     f"{item.what}")
        lines.append(f"{'':<15} {item.figures()}")
    lines.append("use one: medgan sample --model NAME --out DIR (noise-to-image), medgan translate --model NAME "
                 "--input IMAGES --out DIR (translation), or medgan.load('NAME') in Python; every output is "
                 "synthetic or derived, and each model's DATA_CARD.json names its training data")
    return "\n".join(lines)


__all__ = ["MODELS", "ZooEntry", "describe", "entries", "entry", "locate", "names", "resolve"]
