"""Cohorts at scale: preparation, start-up, memory and throughput from a prepared cache against the in-memory path.

The cohort is synthetic: subject k is the MNI ICBM152 2009a T1 template (nilearn's wheel) with a random integer
shift (up to 8 voxels per axis), a left-right flip (half the subjects), a gamma in [0.8, 1.25], a smooth
multiplicative bias field (a random quadratic, up to +/-20%) and Gaussian noise (1-3% of the intensity range),
written as int16 NIfTI (197 x 233 x 189, 1 mm). The template's anatomy is the same in every subject: these
figures are about data handling, not about learning.

For each cohort size and resolution, each measure runs in a fresh process (so each peak RSS is its own):

* ``prepare``: ``medgan prepare`` wall time and subjects/s (the workers' default: one per core), cache size;
* ``start``: time from a fresh Python process to the end of the first training step, from the cache (warm) and,
  where it fits this machine, from the folder read into memory (``load_slices``: the path without a cache);
* ``train``: peak RSS of that process after ``--steps`` default-recipe steps, and images/s over them.

``--throughput`` also times the default (noise-to-image) and the paired recipe (x2 downsampling) at 128 and
256 px from the cache, and the cache against memory at 64 px (the demo's regime).

    python benchmarks/bench_cohort.py --subjects 40 160 640 --resolutions 128 256 --out bench-cohort
    python benchmarks/bench_cohort.py --subjects 40 --resolutions 64 --throughput --steps 100 --out bench-cohort

On a GPU (the same measures, with the batch on the device; ``train.device=cuda``):

    python benchmarks/bench_cohort.py --subjects 640 --resolutions 256 --device cuda --out bench-cohort-gpu
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MEASURE = r'''
import json, resource, sys, time
started = time.perf_counter()
from dataclasses import replace
import torch
from medgan.training.tasks import TASKS, resolve_config
from medgan.training.batches import BatchSampler
values = json.loads(sys.argv[1])
steps, device, memory = int(sys.argv[2]), sys.argv[3], sys.argv[4] == "memory"
config = resolve_config(values)
task_class = TASKS.get(config.task)
if memory:  # today's path without a cache: every tile read into this process
    from medgan.data import load_slices
    data = load_slices(config.data, progress=False)
else:
    data = task_class.load_data(config, progress=False)
loaded = time.perf_counter() - started
task = task_class(config, data, torch.device(device), torch.Generator().manual_seed(0))
sampler = BatchSampler(data, config.train.batch_size, config.data, torch.Generator().manual_seed(1),
                       task.attributes, task.groups_by_class, task.nearest_domains)
task.set_horizon(steps)
task.train_step(sampler.next().to(torch.device(device)), 0)
first = time.perf_counter() - started
began = time.perf_counter()
for step in range(1, steps):
    task.train_step(sampler.next().to(torch.device(device)), step)
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - began
print(json.dumps({"tiles": len(data), "load_s": loaded, "first_step_s": first,
                  "images_per_s": (steps - 1) * config.train.batch_size / max(seconds, 1e-9),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def write_subject(job: tuple) -> None:
    """Subject ``index`` of the cohort (module docstring) as ``sub-<index>.nii``."""
    import nibabel as nib

    from medgan.data.sources import mni152_path

    folder, index, seed = job
    path = Path(folder) / f"sub-{index:04d}.nii"
    if path.exists():
        return
    template = nib.load(str(mni152_path()))
    base = np.asarray(template.get_fdata(), dtype=np.float32)
    peak = float(np.percentile(base, 99.9))
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in base.shape], indexing="ij"))
    rng = np.random.default_rng(seed + index)
    volume = np.roll(base, tuple(int(s) for s in rng.integers(-8, 9, 3)), axis=(0, 1, 2))
    if rng.random() < 0.5:
        volume = volume[::-1]
    volume = peak * np.clip(volume / peak, 0, None) ** rng.uniform(0.8, 1.25)
    coefficients = rng.uniform(-0.1, 0.1, 6)
    bias = 1 + sum(c * g for c, g in zip(coefficients[:3], grid)) + sum(c * g**2 for c, g in zip(coefficients[3:], grid))
    volume = volume * bias + rng.normal(0, rng.uniform(0.01, 0.03) * peak, volume.shape).astype(np.float32)
    temporary = path.with_suffix(".tmp.nii")
    nib.save(nib.Nifti1Image(np.clip(volume, 0, 32767).astype(np.int16), template.affine), str(temporary))
    os.replace(temporary, path)


def write_cohort(folder: Path, subjects: int, seed: int = 0, workers: int = 2) -> None:
    """Subjects 0 .. subjects-1 (existing files are kept), ``workers`` processes at a time."""
    from concurrent.futures import ProcessPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), index, seed) for index in range(subjects)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_subject, jobs))


def subset_folder(cohort: Path, root: Path, subjects: int) -> Path:
    """A folder of links to the first ``subjects`` files of the cohort."""
    folder = root / f"cohort-{subjects}"
    folder.mkdir(parents=True, exist_ok=True)
    for file in sorted(cohort.glob("sub-*.nii"))[:subjects]:
        link = folder / file.name
        if not link.exists():
            link.symlink_to(file.resolve())
    return folder


def measure(values: dict, steps: int, device: str, memory: bool = False) -> dict:
    """The MEASURE script in a fresh process (its own peak RSS); ``memory``: the folder read into memory."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(values), str(steps), device,
                             "memory" if memory else "stream"],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    found = json.loads(result.stdout.strip().splitlines()[-1])
    found["process_s"] = time.perf_counter() - began
    return found


def prepare(folder: Path, cache: Path, resolution: int, degrade: str | None = None) -> dict:
    began = time.perf_counter()
    extra = ["--set", f"data.degrade={degrade}"] if degrade else []
    result = subprocess.run([sys.executable, "-m", "medgan", "prepare", "--data", str(folder), "--out", str(cache),
                             "--resolution", str(resolution), "--quiet", *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        return {"error": result.stderr.strip()}
    manifest = json.loads((cache / "manifest.json").read_text())
    size = sum(f.stat().st_size for f in (cache / "subjects").rglob("*.npy"))
    return {"prepare_s": seconds, "subjects_per_s": len(manifest["subjects"]) / seconds, "tiles": manifest["tiles"],
            "cache_gib": size / 2**30}


PAIRED_DEGRADE = "downsample:2"


def train_values(source: Path, resolution: int, task: str = "unconditional", device: str = "cpu") -> dict:
    """A run's values; a paired run on a folder derives its inputs (a paired cache holds them already)."""
    values = {"task": task, "data": {"source": str(source), "resolution": resolution},
              "train": {"device": device, "eval_every": 0}}
    if task == "paired" and not (source / "manifest.json").exists():
        values["data"]["degrade"] = PAIRED_DEGRADE
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[40, 160, 640])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=20, help="training steps per measure")
    parser.add_argument("--memory-limit", type=int, default=40, help="largest cohort read into memory")
    parser.add_argument("--throughput", action="store_true", help="also: recipes at 128/256 px, cache vs memory")
    parser.add_argument("--rounds", type=int, default=3, help="--throughput at 64 px: alternating rounds of the cache "
                        "and memory arms (medians)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench-cohort"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cohort = args.out / "cohort"
    write_cohort(cohort, max(args.subjects))
    rows = []
    for subjects in args.subjects:
        folder = subset_folder(cohort, args.out, subjects)
        for resolution in args.resolutions:
            cache = args.out / f"cache-{subjects}-{resolution}"
            row = {"subjects": subjects, "resolution": resolution, **prepare(folder, cache, resolution)}
            row["warm"] = measure(train_values(cache, resolution, device=args.device), args.steps, args.device)
            if subjects <= args.memory_limit:
                row["memory"] = measure(train_values(folder, resolution, device=args.device), args.steps, args.device,
                                        memory=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.throughput:
        subjects = min(args.subjects)
        folder = subset_folder(cohort, args.out, subjects)
        for resolution in (64, 128, 256):
            for task in ("unconditional", "paired"):
                cache = args.out / (f"cache-{subjects}-{resolution}" + ("-paired" if task == "paired" else ""))
                if not (cache / "manifest.json").exists():
                    prepare(folder, cache, resolution, PAIRED_DEGRADE if task == "paired" else None)
                arms = (("cache", cache), ("memory", folder)) if resolution == 64 else (("cache", cache),)
                found: dict[str, list[float]] = {name: [] for name, _ in arms}
                for _ in range(args.rounds if resolution == 64 else 1):  # alternating: load hits both arms alike
                    for name, source in arms:
                        result = measure(train_values(source, resolution, task, args.device), args.steps,
                                         args.device, memory=name == "memory")
                        found[name].append(result.get("images_per_s", float("nan")))
                row = {"throughput": task, "resolution": resolution, "rounds": len(next(iter(found.values()))),
                       **{f"{name}_images_per_s": float(np.median(values)) for name, values in found.items()},
                       **{f"{name}_all": values for name, values in found.items()}}
                if "memory" in found:
                    row["cache_over_memory"] = row["cache_images_per_s"] / row["memory_images_per_s"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
