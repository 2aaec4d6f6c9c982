"""The README/manual figure of a 3D run: axial, coronal and sagittal mid-planes of held-out real subjects of the
synthetic cohort (first row) and of sampled volumes (the other rows), two volumes per row.

    python3 benchmarks/volume_figure.py --run medgan-demo-volume --out docs/demo_volume.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from medgan.config import DataConfig  # noqa: E402
from medgan.data.cohort import HELD_OUT, mni_cohort  # noqa: E402
from medgan.data.cubes import cubes_of  # noqa: E402
from medgan.inference.sampling import load_generator  # noqa: E402
from medgan.training.tasks.noise_to_image.volumes import mid_planes  # noqa: E402
from medgan.visuals import save_grid  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=3, help="rows of samples (two volumes each)")
    args = parser.parse_args()
    loaded = load_generator(args.run)
    side = loaded.spec.resolution
    config = DataConfig(source="mni152-cohort", dims=3, resolution=side)
    real = cubes_of(config, mni_cohort(2, first=HELD_OUT)).images
    fake = loaded.generate(2 * args.rows, seed=0)
    planes = mid_planes(torch.cat([real, fake]))
    print(save_grid(planes, args.out, columns=6, scale=3))


if __name__ == "__main__":
    main()
