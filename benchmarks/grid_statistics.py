"""What varies among a benchmark run's samples: slice size and brightness, against the real MNI slices.

Pairwise MS-SSIM says how alike samples are, not why. This reads the final sample grid (64 EMA samples of fixed
noise, ``samples/final.png``) of each cached ``bench_quality.py`` run of the given recipes and reports, beside
the 112 real slices: the foreground fraction (brain area; small cerebellar and vertex slices < 0.25), and the
standard deviation of the mean foreground intensity (global brightness, which one template does not vary much).

    python benchmarks/grid_statistics.py --out bench-quality medgan no-ms standard
    python benchmarks/grid_statistics.py --grids medgan-demo-brain/samples/final.png docs/demo_brain_ttur.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

FOREGROUND = -0.8  # images are in [-1, 1]; the background is -1
TILE, PAD = 64, 2  # the grid layout of medgan's sample grids (8 x 8 tiles of 64 px, 2 px padding)


def tiles(path: Path) -> np.ndarray:
    grid = np.asarray(Image.open(path).convert("L")).astype(np.float64) / 127.5 - 1.0
    step = TILE + PAD
    return np.stack([grid[PAD + r * step:PAD + r * step + TILE, PAD + c * step:PAD + c * step + TILE]
                     for r in range(8) for c in range(8)])


def describe(name: str, images: np.ndarray) -> str:
    area = (images > FOREGROUND).mean(axis=(1, 2))
    brightness = np.array([image[image > FOREGROUND].mean() for image in images])
    q10, q50, q90 = np.percentile(area, [10, 50, 90])
    return (f"| {name} | {len(images)} | {q10:.3f} / {q50:.3f} / {q90:.3f} | {(area < 0.25).mean():.3f} | "
            f"{brightness.std():.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*")
    parser.add_argument("--grids", nargs="+", default=[], help="sample grid PNGs to describe as they are")
    parser.add_argument("--out", default="bench-quality", help="bench_quality.py's --out")
    args = parser.parse_args()
    from medgan.config import DataConfig
    from medgan.data import load_slices

    real = load_slices(DataConfig(source="mni152"), progress=False).images.numpy()[:, 0]
    print("| images | n | area 10th / 50th / 90th percentile | share of small slices (area < 0.25) | "
          "brightness SD |\n|---|---|---|---|---|")
    print(describe("real MNI slices", real))
    for recipe in args.recipes:
        grids = sorted(Path(args.out, "mni", recipe).glob("seed*/run/samples/final.png"))
        if grids:
            print(describe(f"{recipe} ({len(grids)} seeds)", np.concatenate([tiles(g) for g in grids])))
    for grid in args.grids:
        print(describe(grid, tiles(Path(grid))))


if __name__ == "__main__":
    main()
