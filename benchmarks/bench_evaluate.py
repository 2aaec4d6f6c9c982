"""Benchmark: the full evaluation suite on 10,000 vs 10,000 images at 64 x 64 with the offline features.

Target: at most 120 s on a 2-core CPU (features, FID, KID, precision/recall/density/coverage, SSIM/MS-SSIM/PSNR
distributions, SNR/contrast/CNR, intensity fidelity, diversity, memorization audit and the HTML report).
Also prints ``training_score`` time for 500 vs 500 images (target < 3 s) and the offline extractor's FID on
a degradation ladder of MNI slices (real split vs noisy, blurred and collapsed).

Images: MNI template slices along all three axes with random flips, shifts, zooms and intensity jitter
(``medgan.data.classic_augment``), so the 10,000 "real" images are distinct; the "synthetic" ones are more of
the same plus noise. Usage::

    python benchmarks/bench_evaluate.py [--count 10000] [--threads N] [--out DIR]
"""

from __future__ import annotations

import os

# Idle OpenMP workers must sleep rather than spin, or a busy shared CPU slows every torch op many times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TARGET_SECONDS = 120.0
TRAINING_SCORE_TARGET = 3.0


def mni_slices() -> tuple[torch.Tensor, object]:
    from medgan.config import DataConfig
    from medgan.data import load_slices

    sets = [load_slices(DataConfig(axis=axis), progress=False) for axis in (0, 1, 2)]
    return torch.cat([s.images for s in sets]), sets[2].mapping


def augmented(images: torch.Tensor, count: int, seed: int, noise: float) -> torch.Tensor:
    from medgan.data import classic_augment

    generator = torch.Generator().manual_seed(seed)
    picks = images[torch.randint(len(images), (count,), generator=generator)]
    out = classic_augment(picks, flip=True, rotate_degrees=8.0, scale=0.08, generator=generator)
    gain = 1.0 + 0.05 * torch.randn(count, 1, 1, 1, generator=generator)
    out = (out + 1.0) * gain - 1.0 + noise * torch.randn(out.shape, generator=generator)
    return out.clamp(-1.0, 1.0)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma + 0.5)
    kernel = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1)
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), kernel)
    return F.conv2d(F.pad(images, (0, 0, radius, radius), mode="replicate"), kernel.transpose(2, 3))


def ladder(slices: torch.Tensor) -> None:
    from medgan.metrics import extract_features, fid, get_extractor

    order = torch.randperm(len(slices), generator=torch.Generator().manual_seed(0))
    reference, held_out = slices[order[::2]], slices[order[1::2]]
    noise = torch.randn(held_out.shape, generator=torch.Generator().manual_seed(1))
    rungs = {
        "real vs real split": held_out,
        "vs noisy (std 0.05)": (held_out + 0.05 * noise).clamp(-1, 1),
        "vs noisy (std 0.1)": (held_out + 0.1 * noise).clamp(-1, 1),
        "vs blurred (1 px)": blur(held_out, 1.0),
        "vs blurred (2 px)": blur(held_out, 2.0),
        "vs 4 modes": held_out[:4].repeat(len(held_out) // 4 + 1, 1, 1, 1)[: len(held_out)],
        "vs collapsed (1 slice)": held_out[:1].repeat(len(held_out), 1, 1, 1),
    }
    extractor = get_extractor("offline")
    reference_features = extract_features(reference, extractor)
    print(f"\nOffline-feature FID ladder (MNI slices, 3 axes, {len(reference)} vs {len(held_out)}):")
    for name, images in rungs.items():
        print(f"  {name:24s} FID {fid(reference_features, extract_features(images, extractor)):9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="images per set")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary folder)")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)

    from medgan.metrics import compute_metrics, get_extractor, training_score
    from medgan.evaluation.evaluate import write_outputs

    slices, mapping = mni_slices()
    real = augmented(slices, arguments.count, seed=1, noise=0.0)
    fake = augmented(slices, arguments.count, seed=2, noise=0.03)
    print(f"{arguments.count} vs {arguments.count} images at 64 x 64, torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, load average {os.getloadavg()[0]:.1f}")

    out = arguments.out or Path(tempfile.mkdtemp(prefix="medgan-bench-"))
    os.environ["MEDGAN_CACHE_DIR"] = tempfile.mkdtemp(prefix="medgan-bench-cache-")  # cold: features really extracted
    started = time.perf_counter()
    metrics, artefacts = compute_metrics(real, fake, mapping, get_extractor("offline"), progress=False)
    computed = time.perf_counter()
    metrics["inputs"] = {"real": "augmented MNI slices", "synthetic": "augmented MNI slices + noise",
                         "real_images": len(real), "synthetic_images": len(fake), "resolution": 64,
                         "features": "offline", "feature_dim": 64, "mapping": mapping.to_dict()}
    metrics["timings_s"]["total"] = computed - started
    write_outputs(out, metrics, artefacts)
    finished = time.perf_counter()

    print("stage timings (s): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in metrics["timings_s"].items()
                                             if name != "total"))
    print(f"report written in {finished - computed:.1f} s to {out / 'report.html'}")
    total = finished - started
    print(f"FULL SUITE: {total:.1f} s (target {TARGET_SECONDS:.0f} s, ratio {total / TARGET_SECONDS:.2f})")
    print(f"  FID {metrics['distribution']['fid']:.2f}, KID {metrics['distribution']['kid_mean']:.2f}, "
          f"precision {metrics['distribution']['precision']:.3f}, recall {metrics['distribution']['recall']:.3f}")

    score_real, score_fake = real[:500], fake[:500]
    training_score(score_real[:100], score_fake[:100])  # warm-up
    started = time.perf_counter()
    training_score(score_real, score_fake)
    seconds = time.perf_counter() - started
    print(f"training_score 500 vs 500: {seconds:.2f} s (target {TRAINING_SCORE_TARGET:.0f} s, "
          f"ratio {seconds / TRAINING_SCORE_TARGET:.2f})")
    ladder(slices)


if __name__ == "__main__":
    main()
