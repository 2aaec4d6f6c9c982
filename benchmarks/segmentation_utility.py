"""Segmentation utility of mask-to-image synthesis on embedded data: ct-phantom (organ label maps) and mni152
(grey/white-matter label map).

For each source: (i) trains a pix2pix mask-to-image run (``--task paired --degrade mask``) for ``--minutes``
of wall time, then (ii) runs ``medgan.evaluation.segmentation_app.run_segmentation_utility``: a MONAI U-Net
segmenter trained on real pairs (a), real + synthetic pairs (b) and synthetic pairs only (c), Dice on held-out
real subjects (phantom patients 2000 on; the held-out MNI152 slab), and prints the table. The reference is arm
(a) of the same run: (b) - (a) is the paired gain from synthetic pairs.

Run: python benchmarks/segmentation_utility.py [--minutes 5] [--resolution 64] [--seeds 5] [--epochs 80]
     [--threads 1] [--out /tmp/segutility] [--sources ct-phantom mni152] [--reuse]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from medgan.evaluation.segmentation import SegmentationConfig
from medgan.evaluation.segmentation_app import format_segmentation, run_segmentation_utility
from medgan.run import RunDir
from medgan.training.tasks import resolve_config


def train_mask_to_image(source: str, run_dir: Path, minutes: float, resolution: int, threads: int) -> str:
    """Trains the pix2pix recipe on ``source`` label maps for ``minutes``; returns a one-line summary."""
    from medgan.training.loop import train  # imported here: the training stack is only needed for this step

    # The translator leaves out its identity start for label-map inputs (medgan.inference.translate).
    config = resolve_config({"data": {"source": source, "resolution": resolution, "degrade": "mask"},
                             "train": {"steps": 0, "minutes": minutes, "eval_every": 0, "threads": threads,
                                       "sample_every": 250, "checkpoint_every": 250, "log_every": 50}},
                            "pix2pix")
    result = train(config, run_dir, progress=False, scorer=None)
    return (f"{source}: pix2pix mask-to-image, {resolution} px, {result.steps} steps in {result.seconds / 60:.1f} "
            f"min ({result.images_per_s:.1f} img/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="GAN training budget per source")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=SegmentationConfig.epochs)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 suits a busy, shared CPU)")
    parser.add_argument("--out", default="/tmp/segutility")
    parser.add_argument("--sources", nargs="+", default=["ct-phantom", "mni152"])
    parser.add_argument("--reuse", action="store_true", help="reuse runs already trained in --out")
    arguments = parser.parse_args()

    out = Path(arguments.out)
    config = SegmentationConfig(threads=arguments.threads)
    for source in arguments.sources:
        run_dir = out / f"{source}-mask-run"
        if arguments.reuse and RunDir.is_run(run_dir):
            print(f"{source}: reusing {run_dir}")
        else:
            print(train_mask_to_image(source, run_dir, arguments.minutes, arguments.resolution, arguments.threads))
        started = time.perf_counter()
        result = run_segmentation_utility(run_dir, out / f"{source}-segutility", seeds=arguments.seeds,
                                          epochs=arguments.epochs, config=config, progress=False)
        print(f"\n=== {source}: segmentation utility, {time.perf_counter() - started:.0f} s ===")
        print(format_segmentation(result) + "\n")


if __name__ == "__main__":
    main()
