"""How far to trust an evaluation: intervals, small-N bias, and which metrics see noise, blur and grain.

Real data: a synthetic cohort of the MNI152 template (``bench_cohort.write_cohort``: per subject a random shift,
flip, gamma, smooth bias field and noise; synthetic subjects, not patients), axial slices at 64 px. Subjects
0..S/2-1 are set A (the "real" reference), the others set B (new subjects of the same distribution). Every
comparison is ``medgan.metrics.compute_metrics`` with the offline features, real subjects resampled:

* ``B`` against ``A``: two draws of one distribution, so every distance should be near its floor; FID's excess
  over 0 is its small-N bias.
* ``B + noise`` (Gaussian, SD 0.05 of the [-1, 1] range) and ``B blurred`` (Gaussian, sigma 1 px): which metrics
  rank them below a second real draw, and by how much.
* ``B`` at N = 100, 300 and 1,000 images per set: interval widths and FID's bias against N.

    python benchmarks/bench_metric_trust.py --subjects 24 --out bench-trust
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

ROWS = (  # (label, dotted key of the value, interval key or None, digits)
    ("FID", "distribution.fid", "distribution.fid_interval", 2),
    ("FID-infinity", "distribution.fid_infinity.value", None, 2),
    ("KID x 1e3", "distribution.kid_mean", "distribution.kid_mean_interval", 1),
    ("precision", "distribution.precision", "distribution.precision_interval", 3),
    ("recall", "distribution.recall", "distribution.recall_interval", 3),
    ("FRD", "frd.value", "frd.value_interval", 2),
    ("top-band power ratio", "spectrum.high_frequency_ratio", "spectrum.high_frequency_ratio_interval", 2),
    ("largest band deviation", "spectrum.max_deviation", "spectrum.max_deviation_interval", 2),
    ("GLCM contrast, synthetic / real", "texture.statistics.contrast.ratio", None, 2),
)


def lookup(metrics: dict, key: str):
    value = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def cell(metrics: dict, key: str, interval_key: str | None, digits: int) -> str:
    value = lookup(metrics, key)
    if value is None:
        return "-"
    scale = 1e3 if key.endswith("kid_mean") else 1.0  # KID is printed x 1e3 by convention
    text = f"{value / scale:.{digits}f}" if scale != 1.0 else f"{value:.{digits}f}"
    interval = lookup(metrics, interval_key) if interval_key else None
    if isinstance(interval, dict) and interval.get("low") is not None:
        text += f" [{interval['low'] / scale:.{digits}f}, {interval['high'] / scale:.{digits}f}]"
    return text


def load_halves(folder: Path, subjects: int) -> tuple[object, object]:
    from medgan.config import DataConfig
    from medgan.data import load_slices

    data = load_slices(DataConfig(source=str(folder), resolution=64), progress=False, skip_blank=True)
    labels = np.asarray(data.subjects)
    names = sorted(set(labels))
    first = set(names[: len(names) // 2])
    in_a = np.array([label in first for label in labels])
    return (data.images[torch.from_numpy(in_a)], labels[in_a]), (data.images[torch.from_numpy(~in_a)], labels[~in_a])


def draw(images: torch.Tensor, labels: np.ndarray, count: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False))
    return images[torch.from_numpy(chosen)], labels[chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--out", default="bench-trust")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_cohort import write_cohort

    from medgan.metrics import compute_metrics, get_extractor

    out = Path(args.out)
    cohort = out / "cohort"
    write_cohort(cohort, args.subjects)
    (real_a, subjects_a), (real_b, _) = load_halves(cohort, args.subjects)
    print(f"set A: {len(real_a)} slices of {len(set(subjects_a))} subjects; set B: {len(real_b)} slices", flush=True)
    extractor = get_extractor("offline")
    rng = np.random.default_rng(7)
    largest = max(args.sizes)
    b_images, _ = draw(real_b, np.zeros(len(real_b)), largest, seed=1)
    noisy = (b_images + torch.from_numpy(rng.normal(0, 0.05, b_images.shape)).float()).clamp(-1, 1)
    blurred = torch.from_numpy(ndimage.gaussian_filter(b_images.numpy(), (0, 0, 1.0, 1.0)))
    cases = [(f"B, N = {n}", n, b_images) for n in args.sizes]
    cases += [(f"B + noise SD 0.05, N = {largest}", largest, noisy), (f"B blurred sigma 1, N = {largest}", largest,
                                                                        blurred)]
    results = {}
    for label, count, fake in cases:
        real, subjects = draw(real_a, subjects_a, count, seed=0)
        started = time.perf_counter()
        metrics, _ = compute_metrics(real, fake[:count], None, extractor, real_subjects=subjects)
        results[label] = metrics
        print(f"{label}: {time.perf_counter() - started:.1f} s", flush=True)
    header = "| set against A | " + " | ".join(label for label, *_ in ROWS) + " |"
    lines = [header, "|---" * (len(ROWS) + 1) + "|"]
    for label, metrics in results.items():
        lines.append(f"| {label} | " + " | ".join(cell(metrics, key, interval, digits)
                                                  for _, key, interval, digits in ROWS) + " |")
    text = "\n".join(lines)
    print("\n" + text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
