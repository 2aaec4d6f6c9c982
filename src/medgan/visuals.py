"""Pictures of runs: image grids and loss curves (PNG), shared by training, sampling and the report."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from medgan.utils import atomic_path

if TYPE_CHECKING:  # matplotlib loads only when a figure is drawn
    from matplotlib.figure import Figure


def image_grid(images: torch.Tensor | np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tiles images [N, 1, H, W] in [-1, 1] into one uint8 greyscale picture (8-bit only for display).

    Args:
        images: [N, 1, H, W] (or [N, H, W]) in [-1, 1].
        columns: tiles per row (default: a near-square layout).
        padding: pixels of black between tiles.
    """
    array = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim == 4:
        array = array[:, 0]
    count, height, width = array.shape
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding), dtype=np.uint8)
    tiles = np.clip((array + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top : top + height, left : left + width] = tile
    return grid


def png_bytes(picture: np.ndarray, scale: int = 1) -> bytes:
    """PNG bytes of a uint8 picture, optionally enlarged by an integer factor (nearest neighbour)."""
    image = Image.fromarray(picture)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(images: torch.Tensor | np.ndarray, path: str | Path, columns: int | None = None, scale: int = 1) -> Path:
    """Writes an image grid atomically as PNG and returns its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png_bytes(image_grid(images, columns), scale))
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSON-lines file (missing file -> empty list; a torn last line is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def new_figure(**options: Any) -> Figure:
    """A matplotlib ``Figure(**options)`` drawn by its own Agg canvas, outside pyplot.

    Neither ``matplotlib.use`` nor pyplot: the caller's backend (say a notebook's inline one) and its open
    figures stay as they were, and the figure is freed with its last reference, so nothing needs closing.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure, **options: Any) -> bytes:
    """PNG bytes of a figure made by ``new_figure`` (``options`` go to ``savefig``, e.g. ``dpi``)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **options)
    return buffer.getvalue()


def loss_curve_png(records: list[dict], keys: tuple[str, ...] | None = None) -> bytes:
    """PNG bytes of loss curves (matplotlib's Agg canvas) from training log records.

    Args:
        records: ``losses.jsonl`` records.
        keys: the record keys to plot (default: every key starting with ``loss_``, whatever the task logs).
    """
    if keys is None:
        keys = tuple(sorted({key for record in records for key in record if key.startswith("loss_")}))
    figure = new_figure(figsize=(6, 3.2), dpi=100)
    axis = figure.subplots()
    steps = [record["step"] for record in records]
    for key in keys:
        values = [record.get(key, float("nan")) for record in records]
        axis.plot(steps, values, label=key)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure_png(figure)


def save_loss_curve(log_path: str | Path, path: str | Path) -> Path:
    """Plots ``losses.jsonl`` of a run into a PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(loss_curve_png(read_jsonl(log_path)))
    return path
