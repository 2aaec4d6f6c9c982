"""The phantom's modalities, measured: render time, per-tissue contrast, bias-field range, and the README picture.

Simulated data. Renders the 16 held-out patients (split "test", 32 slices) at 256 px in T1, T2, portal-venous
and unenhanced CT and prints:

* seconds per slice for the shared CT + MR render and for the unenhanced CT;
* per tissue, the median over slices of the tissue's median inside its eroded label: HU for both CT phases,
  MR relative to the same slice's liver (MR units are arbitrary and differ between patients);
* the range of the bias field over the body.

and writes ``docs/phantom_modalities.png`` (rows: 3 held-out patients; columns: T1, T2, CT portal, CT
unenhanced). Run: ``python benchmarks/phantom_modalities.py [--out docs]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from medgan.data.phantom import LABEL
from medgan.data.phantom.modalities import _portal_render, _unenhanced_render, phantom_modalities
from medgan.data.phantom.mr import bias_field

TISSUES = ("fat", "muscle", "liver", "spleen", "kidney", "aorta", "spinal-canal", "bone-cancellous", "lesion")


def tissue_medians(image: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    out = {}
    for name in TISSUES:
        mask = ndimage.binary_erosion(labels == LABEL[name])
        if mask.sum() >= 8:
            out[name] = float(np.median(image[mask]))
    return out


def picture(data, rows: list[int], path: Path, tile: int = 160) -> None:
    from PIL import Image

    from medgan.utils import atomic_path

    gap = 4
    sheet = Image.new("L", (4 * tile + 5 * gap, len(rows) * tile + (len(rows) + 1) * gap), 255)
    for row, index in enumerate(rows):
        for column, name in enumerate(("t1", "t2", "ct", "ct-unenhanced")):
            image = data.images[name][index][24:232, 24:232]
            low, high = (-150.0, 250.0) if name.startswith("ct") else (0.0, float(np.percentile(image, 99.5)))
            grey = (np.clip((image - low) / (high - low), 0, 1) * 255 + 0.5).astype(np.uint8)
            tile_image = Image.fromarray(grey).resize((tile, tile), Image.Resampling.LANCZOS)
            sheet.paste(tile_image, (gap + column * (tile + gap), gap + row * (tile + gap)))
    with atomic_path(path) as temporary:
        sheet.save(temporary, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder of the picture")
    args = parser.parse_args()
    start = time.perf_counter()
    _portal_render("test", 256, None, False)
    portal_s = time.perf_counter() - start
    start = time.perf_counter()
    _unenhanced_render("test", 256, None, False)
    unenhanced_s = time.perf_counter() - start
    data = phantom_modalities("test", 256)
    count = len(data.patients)
    print(f"{count} slices at 256 px: CT + T1 + T2 {portal_s / count:.3f} s/slice, unenhanced CT {unenhanced_s / count:.3f} s/slice")
    table: dict[str, dict[str, list[float]]] = {}
    for index in range(count):
        labels = data.labels[index]
        liver = {name: tissue_medians(data.images[name][index], labels).get("liver") for name in ("t1", "t2")}
        for name in ("ct", "ct-unenhanced", "t1", "t2"):
            for tissue, value in tissue_medians(data.images[name][index], labels).items():
                if name in ("t1", "t2"):
                    value = value / liver[name] if liver[name] else np.nan
                table.setdefault(tissue, {}).setdefault(name, []).append(value)
    print("| tissue | CT portal (HU) | CT unenhanced (HU) | T1w / liver | T2w / liver | slices |")
    print("|---|---|---|---|---|---|")
    for tissue in TISSUES:
        if tissue in table:
            values = {name: float(np.nanmedian(v)) for name, v in table[tissue].items()}
            print(f"| {tissue} | {values['ct']:.0f} | {values['ct-unenhanced']:.0f} | {values['t1']:.2f} | "
                  f"{values['t2']:.2f} | {len(table[tissue]['ct'])} |")
    ranges = []
    for index in range(0, count, 2):
        seed = int(data.patients[index].split("-")[1])
        field = bias_field(seed, data.heights[index], 256, data.pixel_spacing_mm)[data.labels[index] > 0]
        ranges.append((field.min(), field.max()))
    ranges = np.array(ranges)
    print(f"bias field over the body: median min {np.median(ranges[:, 0]):.2f}, median max {np.median(ranges[:, 1]):.2f}, "
          f"extremes {ranges.min():.2f}-{ranges.max():.2f}")
    path = Path(args.out) / "phantom_modalities.png"
    picture(data, [0, 3, 5], path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
