"""Preview grids of the simulated CT phantom (the pictures ``docs/phantom.png`` and ``docs/phantom_lesions.png``).

Simulated data, not patient data. Regenerate them with
``python -c "from medgan.data.phantom import save_previews; save_previews('docs')"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medgan.data.phantom.cases import lesion_rois, render_patient


def _window_to_bytes(image_hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """HU -> uint8 grey through a CT window."""
    low = level - width / 2
    return (np.clip((image_hu - low) / width, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_previews(
    folder: str | Path, tile: int = 192, window: tuple[float, float] = (50.0, 400.0)
) -> tuple[Path, Path]:
    """Writes ``phantom.png`` (4 x 4 whole slices) and ``phantom_lesions.png`` (6 ROIs per lesion class).

    Args:
        folder: output folder (``docs/`` for the README pictures).
        tile: side in pixels of each whole-slice tile (slices are cropped to the body, then resized).
        window: CT window (level, width) in HU; abdomen W400 L50 by default.

    Returns:
        The two paths.
    """
    from PIL import Image, ImageDraw

    from medgan.utils import atomic_path

    folder = Path(folder)
    gap = 4
    sheet = Image.new("L", (4 * tile + 5 * gap, 4 * tile + 5 * gap), 255)
    for index in range(16):
        case = render_patient(100 + index, size=256, dose=1.0, n_lesions=(0, 3))
        crop = _window_to_bytes(case.image_hu[24:232, 24:232], *window)
        picture = Image.fromarray(crop).resize((tile, tile), Image.Resampling.LANCZOS)
        sheet.paste(picture, (gap + (index % 4) * (tile + gap), gap + (index // 4) * (tile + gap)))
    slices_path = folder / "phantom.png"
    with atomic_path(slices_path) as temporary:
        sheet.save(temporary, optimize=True)
    rois = lesion_rois(n_per_class=6, roi_size=64, seed=7)
    scale, label_width = 2, 96
    roi_sheet = Image.new("L", (label_width + 6 * (64 * scale + gap) + gap, 3 * (64 * scale + gap) + gap), 255)
    draw = ImageDraw.Draw(roi_sheet)
    for row, name in enumerate(rois.class_names):
        draw.text((6, gap + row * (64 * scale + gap) + 56), name, fill=0)
        for column, index in enumerate(np.flatnonzero(rois.labels == row)[:6]):
            picture = Image.fromarray(_window_to_bytes(rois.images_hu[index], *window))
            picture = picture.resize((64 * scale, 64 * scale), Image.Resampling.NEAREST)
            roi_sheet.paste(picture, (label_width + gap + column * (64 * scale + gap), gap + row * (64 * scale + gap)))
    lesions_path = folder / "phantom_lesions.png"
    with atomic_path(lesions_path) as temporary:
        roi_sheet.save(temporary, optimize=True)
    return slices_path, lesions_path
