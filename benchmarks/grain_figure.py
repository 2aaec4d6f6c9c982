"""The grain figure of the manual: real MNI slices above the first two rows of samples of each given recipe.

Reads the sample grids that ``bench_quality.py`` caches per run (``<out>/mni/<recipe>/seed<k>/samples.png``: the
first 64 of 512 samples of seeded noise, 8 per row, enlarged 2x), and the real slices from the MNI source, and
writes one PNG with a caption line above each block. The caption carries the run's top-band power ratio.

    python benchmarks/grain_figure.py --out bench-quality-grain --seed 0 \\
        --recipes "medgan=transposed convolutions (before)" "spec-1=spectral term 1.0 (default)" \\
        --figure docs/grain_spectral.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROWS = 2  # rows of 8 tiles per block
TILE, PAD, SCALE = 64, 2, 2  # medgan's sample grids: 64 px tiles, 2 px padding, enlarged 2x by bench_quality
CAPTION = 22  # caption height in px


def real_block() -> np.ndarray:
    """16 real slices spread over the volume, in the sample grids' layout."""
    from medgan.config import DataConfig
    from medgan.data import load_slices
    from medgan.visuals import image_grid

    slices = load_slices(DataConfig(source="mni152"), progress=False).images
    picks = np.linspace(0, len(slices) - 1, 8 * ROWS).round().astype(int)
    grid = image_grid(slices[picks], columns=8, padding=PAD)
    return np.kron(grid, np.ones((SCALE, SCALE), dtype=np.uint8))


def sample_block(path: Path) -> np.ndarray:
    """The first ROWS rows of a cached sample grid."""
    grid = np.asarray(Image.open(path).convert("L"))
    return grid[: (PAD + ROWS * (TILE + PAD)) * SCALE]


def captioned(block: np.ndarray, text: str) -> np.ndarray:
    caption = Image.new("L", (block.shape[1], CAPTION), 255)
    ImageDraw.Draw(caption).text((4, 5), text, fill=0)
    return np.concatenate([np.asarray(caption), block])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="bench_quality.py's --out folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", required=True, metavar="RECIPE=LABEL")
    parser.add_argument("--figure", required=True, help="the PNG to write")
    args = parser.parse_args()
    blocks = [captioned(real_block(), "real MNI152 slices")]
    for item in args.recipes:
        recipe, label = item.split("=", 1)
        folder = Path(args.out, "mni", recipe, f"seed{args.seed}")
        ratio = json.loads((folder / "result.json").read_text())["high_frequency_ratio"]
        blocks.append(captioned(sample_block(folder / "samples.png"), f"{label}: top-band power {ratio:.2f}x real"))
    Image.fromarray(np.concatenate(blocks)).save(args.figure)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
