"""Downstream utility on the simulated liver-lesion ROIs ("ct-lesions": cyst / metastasis / hemangioma).

Two reference "generators" bracket what a GAN can reach, in the same run:
- oracle: fresh ROIs from the same simulator (new patients), i.e. a perfect generator;
- shuffled: the oracle's images with permuted labels, i.e. a generator whose class conditioning is useless.
It also times the classifier (images per second) against its own variants: NCHW vs channels_last, 1 thread vs
torch's default, bf16 autocast vs fp32.

Run: python benchmarks/bench_utility.py [--seeds 3] [--epochs 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from medgan.config import DataConfig
from medgan.data.pipeline import load_slices
from medgan.data.phantom import lesion_rois
from medgan.evaluation.utility import UtilityConfig, format_utility, run_utility, split_real, train_classifier


def oracle_synthetic(real, seed: int = 2):
    """ROIs of new simulated patients (dataset ``seed``), windowed like ``real``."""
    rois = lesion_rois(n_per_class=32, roi_size=real.images.shape[-1], seed=seed)
    images = torch.as_tensor(np.asarray(real.mapping.to_unit(rois.images_hu), dtype=np.float32))[:, None]
    names = [f"oracle/{patient}" for patient in rois.patients]
    return dataclasses.replace(
        real,
        images=images,
        labels=torch.as_tensor(np.asarray(rois.labels), dtype=torch.int64),
        subjects=names,
        sources=names,
        class_names=tuple(rois.class_names),
    )


def images_per_second(train, config: UtilityConfig, epochs: int = 4) -> float:
    """Training throughput of one classifier run (after a one-epoch warm-up)."""
    config = dataclasses.replace(config, min_steps=0)
    train_classifier(train.images, train.labels, 3, dataclasses.replace(config, epochs=1), 0)
    start = time.perf_counter()
    train_classifier(train.images, train.labels, 3, dataclasses.replace(config, epochs=epochs), 0)
    return epochs * len(train.labels) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()

    real = load_slices(DataConfig(source="ct-lesions", window="liver", resolution=64), progress=False)
    train, test = split_real(real, test_fraction=0.3, seed=0)
    print(f"ct-lesions: {len(real.labels)} ROIs of {len(set(real.subjects))} patients; train {len(train.labels)}, "
          f"test {len(test.labels)} (split by patient)")
    config = UtilityConfig(seeds=arguments.seeds, epochs=arguments.epochs, threads=arguments.threads)

    reference = images_per_second(train, config)
    print(f"classifier training, 64 px, fp32, channels_last, {arguments.threads} thread(s): {reference:.0f} img/s")
    for label, variant in (
        ("NCHW", dataclasses.replace(config, channels_last=False)),
        ("torch default threads", dataclasses.replace(config, threads=0)),
        ("bf16 autocast", dataclasses.replace(config, precision="bf16")),
    ):
        speed = images_per_second(train, variant)
        print(f"  {label:<22} {speed:6.0f} img/s  ratio {speed / reference:.2f}x of the reference")

    oracle = oracle_synthetic(real)
    generator = torch.Generator().manual_seed(0)
    permutation = torch.randperm(len(oracle.labels), generator=generator)
    shuffled = dataclasses.replace(oracle, labels=oracle.labels[permutation])
    for name, synthetic in (("oracle (perfect generator)", oracle), ("label-shuffled", shuffled)):
        result = run_utility(train, test, synthetic, config, progress=False)
        print(f"\n=== synthetic set: {name}; {result['seconds']:.0f} s ===")
        print(format_utility(result))


if __name__ == "__main__":
    main()
